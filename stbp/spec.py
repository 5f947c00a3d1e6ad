"""The network's spec: the paper's notation for a stack of layers, parsed and built.

    parse_spec("784-800-10")                    # the input's 784 numbers, then two layers
    parse_spec("28x28-15C5-P2-40C5-P2-300-10")  # the paper's convolutional network
    spec_of([784, 800, 10])                     # "784-800-10"

Tokens, separated by "-": first the input, ``n`` (n numbers), ``HxW`` or ``HxWxC``
(maps); then ``n`` (n fully connected neurons, chapter 2's ``Dense``), ``cCk`` (c
feature maps from k x k kernels, stride 1, no padding), ``cCkpP`` (the same on the maps
padded by P < k zeros on each side) and ``Pk`` (k x k average pooling), chapter 8's
``Conv`` and ``Pool``.  The book's appendix describes this module; every error names
the spec and the token at fault.

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

import numbers
import re

_TOKENS = {"conv": re.compile(r"^(\d+)C(\d+)(?:p(\d+))?$"),
           "pool": re.compile(r"^P(\d+)$"), "dense": re.compile(r"^(\d+)$")}
_INPUT = re.compile(r"^(\d+)(?:x(\d+)(?:x(\d+))?)?$")


def spec_of(sizes):
    """The spec string of a list of layer widths [l(0), ..., l(N)], e.g. "784-800-10";
    each width an integer >= 1 (a bool, 2.7 or "3" is refused, naming sizes[k])."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
        raise ValueError(f"sizes must list at least 2 layer widths; got sizes = {sizes!r}")
    widths = []
    for k, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes[{k}] must be an integer >= 1; got {s!r}")
        if s < 1:
            raise ValueError(f"sizes[{k}] must be an integer >= 1; got {s!r}")
        widths.append(str(int(s)))
    return "-".join(widths)


def _layer(spec, tok, shape):
    """The layer of token tok on input of shape (H, W, C) or (n,): a dict with its shape."""
    kind, m = next(((k, r.match(tok)) for k, r in _TOKENS.items() if r.match(tok)),
                   (None, None))
    if kind is None:
        raise ValueError(f"spec {spec!r}: unknown token {tok!r} (expected cCk or cCkpP "
                         "for a convolution, Pk for pooling, or n for a fully connected "
                         "layer)")
    pad = int(m[3] or 0) if kind == "conv" else None        # pP: P zeros on each side
    numbers_ = [int(v) for v in m.groups()[:2] if v is not None]
    if min(numbers_) < 1:
        raise ValueError(f"spec {spec!r}: token {tok!r} has a size of 0")
    if kind != "dense" and len(shape) == 1:
        raise ValueError(f"spec {spec!r}: {tok!r} needs a feature map, but it follows "
                         f"a fully connected layer or an input of {shape[0]} numbers "
                         "(write a map input as HxW)")
    size, k = numbers_[0], numbers_[-1]
    if kind == "conv" and pad >= k:
        raise ValueError(f"spec {spec!r}: the padding {pad} of {tok!r} must be smaller "
                         f"than its kernel size {k}")
    if kind == "conv" and k > min(shape[:2]) + 2 * pad:
        padded = f" padded by {pad}" if pad else ""
        raise ValueError(f"spec {spec!r}: the {k}x{k} kernel of {tok!r} is larger than "
                         f"its {shape[0]}x{shape[1]} input{padded}")
    if kind == "pool" and (shape[0] % k or shape[1] % k):
        raise ValueError(f"spec {spec!r}: pooling {tok!r} does not divide the "
                         f"{shape[0]}x{shape[1]} map")
    grow = 2 * (pad or 0) - k + 1                           # a convolution's H_o - H
    out = {"conv": lambda: (shape[0] + grow, shape[1] + grow, size),
           "pool": lambda: (shape[0] // k, shape[1] // k, shape[2]),
           "dense": lambda: (size,)}[kind]()
    return {"kind": kind, "token": tok, "size": size,
            "k": None if kind == "dense" else k, "pad": pad, "shape": out}


def parse_spec(spec):
    """Parse the paper's notation, e.g. "28x28-15C5-P2-40C5-P2-300-10", into layers.

    Returns [{"kind", "token", "size", "k", "pad", "shape"}, ...], starting with the
    input (kind "input"); shape is a layer's output, (H, W, C) for maps and (n,) for
    fully connected layers and a vector input; pad is a convolution's P (0 without pP),
    None for other layers.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as '784-800-10' or "
                        f"'28x28-15C5-P2-10', got {spec!r}")
    tokens = spec.split("-")
    m = _INPUT.match(tokens[0])
    if m is None or min(int(v) for v in m.groups() if v is not None) < 1:
        raise ValueError(f"spec {spec!r}: the first token must be the input size n, HxW "
                         f"or HxWxC (e.g. 784 or 28x28), got {tokens[0]!r}")
    shape = ((int(m[1]),) if m[2] is None
             else (int(m[1]), int(m[2]), int(m[3] or 1)))
    layers = [{"kind": "input", "token": tokens[0], "size": None, "k": None, "pad": None,
               "shape": shape}]
    for tok in tokens[1:]:
        layers.append(_layer(spec, tok, layers[-1]["shape"]))
    if len(layers) < 2 or layers[-1]["kind"] == "pool":
        raise ValueError(f"spec {spec!r}: must end with a layer of neurons (a convolution "
                         "or a fully connected layer), not with the input or a pooling")
    return layers


#: token kind -> the layer class that builds it: "dense" (chapter 2's Dense), "conv" and
#: "pool" (chapter 8's Conv and Pool), each filed by the decorator layer_class where the
#: book defines it, so that this module imports none of them
LAYERS = {}


def layer_class(kind):
    """Decorator: file a class as the builder of the tokens of kind ("dense", "conv",
    "pool"); it is called as cls(size, in_shape, dtype, rng, scheme) for "dense",
    cls(size, k, pad, in_shape, dtype, rng, scheme) for "conv", cls(k, in_shape) for
    "pool"."""
    if kind not in _TOKENS:
        raise ValueError(f"kind must be one of {tuple(_TOKENS)}; got {kind!r}")

    def register(cls):
        LAYERS[kind] = cls
        return cls
    return register


def build(layers, dtype, rng, scheme):
    """The layer objects of a parsed spec, their weights drawn from rng by scheme in the
    order of the layers."""
    out, shape = [], layers[0]["shape"]
    for layer in layers[1:]:
        cls = LAYERS.get(layer["kind"])
        if cls is None:
            raise ValueError(f"{layer['token']!r}: no layer class is loaded for kind "
                             f"{layer['kind']!r} (import stbp)")
        if layer["kind"] == "dense":
            out.append(cls(layer["size"], shape, dtype, rng, scheme))
        elif layer["kind"] == "conv":
            out.append(cls(layer["size"], layer["k"], layer["pad"], shape, dtype, rng,
                           scheme))
        else:
            out.append(cls(layer["k"], shape))
        shape = layer["shape"]
    return out


__all__ = ["spec_of", "parse_spec", "LAYERS", "layer_class", "build"]
