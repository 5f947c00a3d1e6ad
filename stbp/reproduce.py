"""The reproduction command: train a network on MNIST with a named configuration.

    python -m stbp.reproduce --config mlp --seed 0 1 2

Each run writes ``<out>/<config>-<rule>-seed<seed>.json`` (the settings, the per-epoch
history, the final accuracies, the machine), a checkpoint ``.ckpt.npz`` after every epoch
and, at the end, the trained network alone (``.weights.npz``).  Running the same command
again resumes from the checkpoint's last completed epoch; a checkpoint saved under other
settings is refused.

Three protocols (chapter 5):

- ``protocol="validation"`` (the held-out configurations: ``mlp``, ``mlp-long``, ``cnn``,
  ``paper-rectangular-a3`` and ``-a4``, the ``screen-*`` runs and ``t30`` with its ablations):
  training uses 50,000 of the 60,000 training digits; the other 10,000
  (``stbp.data.validation_split``, the same for every run) are scored after every epoch,
  and configuration choices are made on them.  The test set is scored once, after the
  last epoch, unless the run is a selection run (``run(..., test=False)``, ``--no-test``),
  which never touches the test set.
- ``protocol="full"`` (``t30-full``, the final like-for-like runs of chapter 5): training
  on all 60,000 digits, the paper's training set, with settings chosen beforehand on
  validation; the test set is scored once, after the last epoch.  There is no validation
  set.
- the legacy protocol (``paper-<curve>``, ``nearest``, ``best``): training on all 60,000
  digits, the test set scored after every epoch.  ``nearest`` and ``best`` were tuned while
  watching the test set, before the held-out protocol existed (chapter 5).

Every results file records the commit of the checkout the package ran from and whether its
tracked files were unmodified (``provenance``), beside the package version.

The records match what ran: every file is written atomically (``stbp.files``); the results
file, the weights and the checkpoint must be writable before the data are loaded; one run
at a time writes a run's files (a lock file ``.<config>-<rule>-seed<seed>.lock`` beside
them); a checkpoint holding more epochs than asked for is refused (``settings.epochs`` is
always the history's length), as is one whose history was edited.  The command line
refuses an option given twice (``--seed`` collects its values: ``--seed 0 --seed 1`` runs
both) and reports every error in one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy

import stbp
from stbp import backend, checkpoint, checks, files, surrogates
from stbp.backward import RULES
from stbp.data import VAL_SEED, load_mnist, validation_split
from stbp.network import SNN
from stbp.neuron import CARRIES
from stbp.optim import Adam, step_decay
from stbp.train import AFRESH, eval_rng, evaluate, fit, parameters, saved_history

#: Size of the validation set held out of the 60,000 training digits.
N_VAL = 10_000

# Short runs (3 epochs): enough to see whether a setting trains at all.
# T_test: time steps of the test encoding (the paper's window is 30 steps).
PAPER = dict(tau=0.1, v_th=1.5, T=30, T_test=30, a=1.0, init="paper", lr=1e-3, epochs=3,
             batch_size=100, decay_every=None, shift=0)
NEAREST = dict(tau=0.2, v_th=0.5, T=8, T_test=8, surrogate="rectangular", a=1.0,
               init="fan_in", lr=1e-3, epochs=30, batch_size=100, decay_every=10, shift=0)
#: The paper's convolutional network, in its own notation (chapter 8).
CNN_SPEC = "28x28-15C5-P2-40C5-P2-300-10"
#: What the held-out protocol fixed before any run, and what validation chose.
FIXED = {"T": "8 steps for training and testing, fixed before any run for run time (an "
              "epoch costs about T / 8 times as much); the paper uses 30",
         "augmentation": "none, as in the paper",
         "surrogate": "rectangular, a = 1, the authors' code's; not tuned",
         "tau, v_th, init": "the authors' code's decay 0.2 and threshold 0.5, fan-in init"}
MLP = dict(NEAREST, protocol="validation", choices=dict(
    FIXED, schedule="candidate: 30 epochs, lr x0.1 every 10 (lost to 'mlp-long' on the final "
                    "validation accuracy of random seed 0)"))
#: The paper's stated settings under the held-out protocol: the screen of chapter 5.  Every
#: setting, the 3-epoch schedule and the rule for choosing among the runs were fixed before
#: the first screen run.
SCREEN = dict(PAPER, protocol="validation", choices={
    "settings": "the paper's: tau 0.1, V_th 1.5, T 30 for training and testing, its init "
                "(U[-1, 1], rows of unit L2 norm), Adam 1e-3, batch 100; not tuned",
    "schedule": "fixed before the screen: 3 epochs at a constant learning rate",
    "selection": "the paper-settings run with the highest final validation accuracy; runs "
                 "within one binomial standard error of it get a second seed and are "
                 "compared by their two-seed mean; a tie left within one standard error is "
                 "broken in favour of the variant closest to the paper: the sheet's rule, "
                 "then the exact rule with the exp carry, the linear carry, the detached "
                 "reset; curves at the paper's width a = 1 before widened rectangles"})
#: The four curves at the widths that give the paper's settings gradients: the rectangle of
#: width 1 never reaches the silent output layer's potentials (chapter 5), widths 3 and 4 do.
SCREENED = {"gaussian": 1.0, "polynomial": 1.0, "sigmoid": 1.0, "rectangular-a3": 3.0,
            "rectangular-a4": 4.0}
#: The authors' code's neuron (decay 0.2, threshold 0.5, rectangle of width 1) at T = 30,
#: with the paper's init, on the screen's schedule: the gradient variants there.
SCREEN_AUTHORS = dict(SCREEN, tau=0.2, v_th=0.5, surrogate="rectangular", a=1.0, choices=dict(
    SCREEN["choices"], settings="the authors' code's decay 0.2, threshold 0.5 and rectangle "
    "a = 1; T 30 and the paper's init, as in the rest of the screen; not a candidate for the "
    "final configuration, which keeps the paper's settings"))


#: What the screen chose, by the rule SCREEN states (chapter 5): the curve, its width and
#: the gradient variant (the default of --rule and --carry for the t30 configurations).
T30_CHOICE = dict(surrogate="polynomial", a=1.0, rule="exact", carry="linear")
#: The paper's settings with the screen's choice, over a longer schedule: the selection run
#: that chooses the epoch count on validation, the base of the ablations.
T30 = dict(SCREEN, **T30_CHOICE, epochs=15, decay_every=10, choices=dict(
               SCREEN["choices"],
               variant=f"chosen by the screen: {T30_CHOICE['surrogate']} a = "
                       f"{T30_CHOICE['a']:g}, rule {T30_CHOICE['rule']!r}, carry "
                       f"{T30_CHOICE['carry']!r}",
               schedule="fixed before the screen ended: 15 epochs, lr x0.1 after 10, for "
                        "run time; the epoch count of the final runs is the epoch of the "
                        "highest validation accuracy of this run (the earliest if equal)"))
#: One factor at a time from T30, each on validation: T, the neuron, the initialisation.
ABLATIONS = {"T8": dict(T=8, T_test=8),
             "authors-neuron": dict(tau=0.2, v_th=0.5),
             "fan-in": dict(init="fan_in")}
CONFIGS = {
    # the paper's stated settings, with each of its four surrogate curves
    **{f"paper-{name}": dict(PAPER, surrogate=name) for name in surrogates.CURVES},
    # the nearest settings that train well (chapter 5): the authors' code's decay and
    # threshold, fan-in initialisation, fewer time steps
    "nearest": NEAREST,
    # the same, with training digits shifted by up to 2 pixels, trained longer with three
    # learning rates (1e-3, 1e-4, 1e-5), and tested over the paper's window of 30 steps
    "best": dict(NEAREST, shift=2, epochs=50, decay_every=20, T_test=30),
    # the held-out protocol: 'nearest' trained on 50,000 digits, validated on 10,000
    "mlp": MLP,
    "mlp-long": dict(MLP, epochs=50, decay_every=20, choices=dict(
        FIXED, schedule="chosen: 50 epochs, lr x0.1 every 20, over 'mlp' (30 epochs, x0.1 "
                        "every 10) by the final validation accuracy of random seed 0, both "
                        "trained with --no-test")),
    # the paper's rectangular setting with a wider window (chapter 5): a > 3 lets the
    # window |u - V_th| < a/2 reach the silent output layer's potentials near 0
    **{f"paper-rectangular-a{a}": dict(PAPER, surrogate="rectangular", a=float(a),
                                       protocol="validation") for a in (3, 4)},
    # the screen (chapter 5): the paper's settings with each curve at the widths that give
    # gradients, and the authors' code's neuron at T = 30
    **{f"screen-{name}": dict(SCREEN, surrogate=name.split("-")[0], a=a)
       for name, a in SCREENED.items()},
    "screen-authors": SCREEN_AUTHORS,
    # like for like on the paper's terms (chapter 5): the selection run, the final runs on
    # all 60,000 digits (test scored once) and one factor changed at a time
    "t30": T30,
    "t30-full": dict(T30, protocol="full"),
    **{f"t30-{name}": dict(T30, **change) for name, change in ABLATIONS.items()},
    # the paper's convolutional network (chapter 8), held-out protocol, every setting fixed
    # before any run (no choice was made on validation or test)
    "cnn": dict(NEAREST, network=CNN_SPEC, init="paper", epochs=15, decay_every=10,
                protocol="validation",
                choices=dict(FIXED, schedule="fixed: 15 epochs, lr x0.1 after 10, for run time "
                                             "on two CPU cores (the authors' code trains 100 "
                                             "epochs, x0.1 every 40); not tuned",
                             network="the paper's 28x28-15C5-P2-40C5-P2-300-10, average "
                                     "pooling of spikes as in the authors' code",
                             **{"tau, v_th, init": "the authors' code's decay 0.2 and "
                                "threshold 0.5; the paper's init (rows of unit norm), since "
                                "under fan-in init the untrained network's 300 neurons never "
                                "fire on training digits and every gradient is 0 (chapter 8)"})),
}
#: One line per configuration, for --help.
ABOUT = {
    **{f"paper-{name}": f"the paper's stated settings (tau 0.1, V_th 1.5, T 30) with the "
                        f"{name} surrogate, 3 epochs" for name in surrogates.CURVES},
    "nearest": "tau 0.2, V_th 0.5, T 8, rectangular a 1, fan-in init, 30 epochs; test scored "
               "every epoch",
    "best": "'nearest' with training digits shifted by up to 2 px, 50 epochs, tested over "
            "T 30",
    "mlp": "held-out protocol: 'nearest' trained on 50,000 digits, validated on 10,000 every "
           "epoch, test scored once at the end",
    "mlp-long": "'mlp' over 50 epochs, learning rate x0.1 every 20",
    "cnn": "the paper's CNN 28x28-15C5-P2-40C5-P2-300-10 with the settings of 'mlp' but the "
           "paper's init, 15 epochs, learning rate x0.1 after 10; held-out protocol",
    **{f"screen-{name}": f"screen: the paper's settings (tau 0.1, V_th 1.5, T 30, its init) "
                         f"with the {name.split('-')[0]} curve, a = {a:g}, held-out "
                         f"protocol, 3 epochs" for name, a in SCREENED.items()},
    "t30": "the paper's settings with the screen's choice, 15 epochs (lr x0.1 after 10), "
           "held-out protocol: the selection run of the final like-for-like runs",
    "t30-full": "'t30' trained on all 60,000 digits for the 15 epochs validation chose, "
                "test scored once",
    **{f"t30-{name}": f"'t30' with {', '.join(f'{k} {v}' for k, v in change.items())}: an "
                      f"ablation on validation" for name, change in ABLATIONS.items()},
    "screen-authors": "screen: the authors' code's tau 0.2, V_th 0.5, rectangle a = 1 at "
                      "T 30, the paper's init, held-out protocol, 3 epochs",
    **{f"paper-rectangular-a{a}": f"the paper's settings with the rectangular surrogate of "
                                  f"width {a} instead of 1, held-out protocol, 3 epochs"
       for a in (3, 4)},
}


def provenance():
    """{"commit", "tree_clean"} of the git checkout this package runs from: the commit hash
    and whether its tracked files were unmodified (both None outside a git checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        def git(*args):
            return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
        commit = git("rev-parse", "HEAD")
        clean = git("status", "--porcelain", "--untracked-files=no") == ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "tree_clean": None}
    return {"commit": commit, "tree_clean": clean}


def machine():
    """A description of where a run happened."""
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "backend": backend.name,
            "threads": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS") if k in os.environ}}


def settings(config, epochs=None):
    """The training settings of a configuration (without its free-text 'choices')."""
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; choose one of {sorted(CONFIGS)}")
    cfg = {k: v for k, v in CONFIGS[config].items() if k != "choices"}
    if epochs is not None:
        cfg["epochs"] = checks.positive_int("epochs", epochs)
    return cfg


def build(cfg, seed=0, carry="exp"):
    """The network (784-800-10 unless cfg names another) and the Adam optimiser of a
    configuration's settings cfg (see settings), initialised from seed."""
    net = SNN(cfg.get("network", [784, 800, 10]), tau=cfg["tau"], v_th=cfg["v_th"], seed=seed,
              init=cfg["init"], surrogate=surrogates.CURVES[cfg["surrogate"]](cfg["a"]),
              carry=carry)
    return net, Adam(parameters(net), lr=cfg["lr"])


def run_tag(config, rule, cfg):
    """What a checkpoint must have been saved under to be resumed: the configuration's name,
    the rule and every setting except the number of epochs (a run may be extended); for the
    validation protocol also the split."""
    rest = {k: v for k, v in cfg.items() if k != "epochs"}
    if cfg.get("protocol") == "validation":
        rest["split"] = {"n_val": N_VAL, "seed": VAL_SEED}
    return f"{config} rule={rule} {json.dumps(rest, sort_keys=True)}"


def _writable(out):
    """Create the folder out if needed and check that a file can be written there."""
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ValueError(f"out: cannot write results into the folder {str(out)!r} "
                         f"({type(exc).__name__}: {exc}); choose another --out") from None


def _write_json(path, results):
    """Write results as JSON to path atomically (stbp.files.write_atomic)."""
    text = json.dumps(results, indent=1).encode()
    files.write_atomic(path, lambda fh: fh.write(text), "results file")


#: The files of a run, by the suffix of their path after its stem.
OUTPUTS = {".json": "results file", ".weights.npz": "weights", ".ckpt.npz": "checkpoint"}


def _resumable(ckpt, tag, epochs):
    """Refuse, before the data are loaded, a checkpoint of this run that holds more epochs
    than asked for (or one that cannot be resumed: another run's, an edited history)."""
    if os.path.exists(ckpt):
        held = len(saved_history(ckpt, tag)[0].epoch)
        if held > epochs:
            raise ValueError(f"checkpoint {ckpt} holds {held} epochs, more than --epochs "
                             f"{epochs} asks for; pass --epochs {held} or more to use it, "
                             f"or {AFRESH}")


def run(config, seed=0, rule=None, out="results", epochs=None, data=None, progress=True,
        test=True, carry=None):
    """Train the configuration's network (784-800-10 unless it names another) on MNIST with
    CONFIGS[config]; write and return the results dict.

    rule, carry: the gradient rule of chapter 3 and the carry function of chapter 1 ("exp",
    the equations sheet's, or "linear"); None takes the configuration's (t30 and its
    relatives name the screen's choice), else "exact" and "exp".  Runs with the linear carry
    are written under <config>-<rule>-linear-seed<seed>.

    test=False (only for protocol="validation"): a selection run, which never scores the
    test set; its results say test_scored False and final_test_acc None.
    """
    cfg = settings(config, epochs)
    named_rule, named_carry = cfg.pop("rule", "exact"), cfg.pop("carry", "exp")
    rule = named_rule if rule is None else rule
    carry = named_carry if carry is None else carry
    validation = cfg.get("protocol") == "validation"
    origin = provenance()                         # before any training
    seed, rule = checks.integer("seed", seed, 0), checks.choice("rule", rule, RULES)
    if not test and not validation:
        raise ValueError(f"test=False (--no-test) needs a configuration with "
                         f"protocol='validation'; {config!r} has no validation set")
    checks.choice("carry", carry, CARRIES)
    _writable(out)
    if carry != "exp":
        cfg["carry"] = carry                      # part of the run's tag and settings
    stem = os.path.join(out, f"{config}-{rule}{'' if carry == 'exp' else '-' + carry}-seed{seed}")
    for suffix, what in OUTPUTS.items():          # before the first epoch, not after
        files.check_target(stem + suffix, what)
    lock = os.path.join(out, f".{os.path.basename(stem)}.lock")
    with files.exclusive(lock, f"{stem}.*"):
        return _run(config, cfg, seed, rule, stem, data, progress, test, carry, origin)


def _run(config, cfg, seed, rule, stem, data, progress, test, carry, origin):
    """run's work, once its arguments and output paths are checked and its lock is held."""
    validation = cfg.get("protocol") == "validation"
    full = cfg.get("protocol") == "full"
    tag = run_tag(config, rule, cfg)
    _resumable(stem + ".ckpt.npz", tag, cfg["epochs"])
    x_train, y_train, x_test, y_test = load_mnist(data)     # before the first epoch
    net, opt = build(cfg, seed, carry)
    every = cfg["decay_every"]
    schedule = None if every is None else (lambda e: step_decay(cfg["lr"], e, every=every))
    if validation:
        train, val = validation_split(x_train, y_train, N_VAL, VAL_SEED)
        scored = {"val": val, "test": None}
    elif full:
        train, scored = (x_train, y_train), {"val": None, "test": None}
    else:
        train, scored = (x_train, y_train), {"val": None, "test": (x_test, y_test)}
    history = fit(net, opt, train, scored["test"], val=scored["val"], epochs=cfg["epochs"],
                  T=cfg["T"], batch_size=cfg["batch_size"], rule=rule, seed=seed,
                  lr_schedule=schedule, checkpoint=stem + ".ckpt.npz", resume=True,
                  progress=progress, shift=cfg["shift"], T_test=cfg["T_test"], tag=tag)
    if len(history.epoch) != cfg["epochs"]:       # what fit guarantees; never recorded wrong
        raise RuntimeError(f"the history of {stem} holds {len(history.epoch)} epochs, not the "
                           f"{cfg['epochs']} of its settings")
    checkpoint.save(stem + ".weights.npz", net)   # the trained network alone, for chapter 6
    results = {"config": config, "settings": cfg, "rule": rule, "seed": seed,
               "stbp_version": stbp.__version__, **origin, "history": history.to_dict()}
    t0 = time.perf_counter()
    if validation:
        # the test set, once, after the last epoch (on its own generator), unless selecting
        final_test = evaluate(net, x_test, y_test, cfg["T_test"], eval_rng(seed)) if test else None
        results.update(protocol="validation", final_val_acc=history.val_acc[-1],
                       final_test_acc=final_test, test_scored=bool(test),
                       split={"n_val": N_VAL, "seed": VAL_SEED},
                       choices=dict(CONFIGS[config].get("choices", {})))
    elif full:
        # the test set, once, after the last epoch; there is no validation set
        results.update(protocol="full", test_scored=True,
                       final_test_acc=evaluate(net, x_test, y_test, cfg["T_test"],
                                               eval_rng(seed)),
                       choices=dict(CONFIGS[config].get("choices", {})))
    else:
        # the final network scored at both windows, on the same test generator as in
        # training (the last epoch already scored it over T_test)
        by_T = {str(t): history.test_acc[-1] if t == cfg["T_test"] else
                evaluate(net, x_test, y_test, t, eval_rng(seed))
                for t in sorted({cfg["T"], cfg["T_test"]})}
        results.update(final_test_acc=history.test_acc[-1], final_test_acc_by_T=by_T)
    results.update(wall_time_s=sum(history.time) + time.perf_counter() - t0,
                   backend=backend.name, fused=backend.fused is not None, machine=machine())
    _write_json(stem + ".json", results)
    return results


def _count(minimum):
    """An argparse type: an integer >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    return parse


class _Once(argparse.Action):
    """Store an option's value, refusing the option given twice (argparse alone would keep
    the last value and drop the first without a word)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_given_{self.dest}", False):
            parser.error(f"argument {'/'.join(self.option_strings)}: given twice; give it once")
        setattr(namespace, f"_given_{self.dest}", True)
        setattr(namespace, self.dest, values)


def _one_line(exc):
    """The message of an error as one line, naming the file of an OSError that lacks it."""
    text = " ".join(str(exc).split())
    name = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and name is not None and str(name) not in text:
        text = f"{text}: {name}"
    return text or type(exc).__name__


def main(argv=None):
    width = max(map(len, CONFIGS)) + 2
    configs = "\n".join(f"  {name:{width}s}{ABOUT[name]}" for name in sorted(CONFIGS))
    parser = argparse.ArgumentParser(
        prog="python -m stbp.reproduce", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a spiking network on MNIST with a named configuration and write "
                    "<out>/<config>-<rule>-seed<seed>.json.",
        epilog=f"configurations:\n{configs}\n\nA checkpoint is saved after every epoch; "
               "rerunning the same command resumes from it (a checkpoint saved under other "
               "settings is refused).\n")
    parser.add_argument("--config", default="best", choices=sorted(CONFIGS), action=_Once,
                        help="the configuration to train (listed below)")
    parser.add_argument("--seed", type=_count(0), nargs="+", action="extend", default=None,
                        help="one or more seeds (non-negative integers), one run each; "
                             "repeated, --seed collects them (default 0)")
    parser.add_argument("--rule", default=None, choices=list(RULES), action=_Once,
                        help="the gradient rule (chapter 3); default: the configuration's, "
                             "else 'exact'")
    parser.add_argument("--carry", default=None, choices=list(CARRIES), action=_Once,
                        help="the carry function f (chapter 1): the equations sheet's 'exp' "
                             "or 'linear'; default: the configuration's, else 'exp'")
    parser.add_argument("--epochs", type=_count(1), default=None, action=_Once,
                        help="override the configuration's epochs (a positive integer)")
    parser.add_argument("--out", default="results", action=_Once,
                        help="folder for results and checkpoints")
    parser.add_argument("--data", default=None, action=_Once,
                        help="folder holding the MNIST files (default: $STBP_DATA/mnist)")
    parser.add_argument("--no-test", action="store_true",
                        help="a selection run: score the validation set only, never the test "
                             "set (configurations with the validation protocol)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    seeds = args.seed or [0]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        parser.error(f"argument --seed: {', '.join(map(str, twice))} given twice; give each "
                     f"seed once")
    try:            # what import stbp leaves alone: malloc's reuse, Numba's threads
        backend.tune_process()
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"{parser.prog}: error: {_one_line(exc)}\n")
    for seed in seeds:
        try:
            r = run(args.config, seed, args.rule, args.out, args.epochs, args.data,
                    not args.quiet, test=not args.no_test, carry=args.carry)
        except (ValueError, TypeError, OSError, backend.BackendError) as exc:
            parser.exit(2, f"{parser.prog}: error: {_one_line(exc)}\n")
        val = r.get("final_val_acc")
        test = r["final_test_acc"]
        print(f"{args.config} rule={r['rule']} seed={seed}: "
              + (f"validation accuracy {val:.4f}, " if val is not None else "")
              + (f"test accuracy {test:.4f}" if test is not None else "test set not scored")
              + f" after {len(r['history']['epoch'])} epochs, {r['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["N_VAL", "CNN_SPEC", "PAPER", "NEAREST", "FIXED", "MLP", "SCREEN", "SCREENED",
           "SCREEN_AUTHORS", "T30_CHOICE", "T30", "ABLATIONS", "CONFIGS", "ABOUT", "OUTPUTS",
           "provenance", "machine", "settings", "build", "run_tag", "run", "main"]
