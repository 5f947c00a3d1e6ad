"""tools/mutate.py cannot rot silently: every mutation's snippet occurs exactly once in its
file, its tests' files exist, and --list works.  The mutations themselves are not run
here (minutes); tools/mutate.py's docstring gives the command."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "mutate.py")


def load():
    spec = importlib.util.spec_from_file_location("stbp_tools_mutate", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutate = load()


def test_list_names_every_mutation():
    done = subprocess.run([sys.executable, TOOL, "--list"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert listed == [m.name for m in mutate.MUTATIONS]
    assert len(set(listed)) == len(listed)


def test_unknown_name_is_an_error():
    assert mutate.main(["--only", "no-such-mutation", "--list"]) == 2


@pytest.mark.parametrize("m", mutate.MUTATIONS, ids=lambda m: m.name)
def test_snippet_occurs_exactly_once(m):
    assert m.old != m.new
    assert mutate.find(m) == 1, f"{m.name}: the snippet is not found exactly once in {m.file}"
    assert m.tests
    for test in m.tests:
        assert os.path.isfile(os.path.join(ROOT, mutate.test_file(test))) or \
            not test.startswith(mutate.TEETH), test


def test_the_required_files_are_mutated():
    files = {m.file for m in mutate.MUTATIONS}
    assert {"stbp/backward.py", "stbp/neuron.py", "stbp/network.py", "stbp/conv.py",
            "stbp/surrogates.py", "stbp/optim.py", "stbp/kernels/cpu.py"} <= files


def test_node_id_patterns():
    rx = re.compile(mutate.pattern("tests/t.py::test_a"))
    assert rx.fullmatch("tests/t.py::test_a") and rx.fullmatch("tests/t.py::test_a[x-1]")
    assert not rx.fullmatch("tests/t.py::test_ab")
    rx = re.compile(mutate.pattern("tests/t.py::test_a[x-*]"))
    assert rx.fullmatch("tests/t.py::test_a[x-1]") and not rx.fullmatch("tests/t.py::test_a[y-1]")
    assert re.compile(mutate.pattern("tests/t.py")).fullmatch("tests/t.py::test_b[0]")


def test_a_snippet_is_replaced_and_restored_exactly(tmp_path):
    (tmp_path / "stbp").mkdir()
    path = tmp_path / "stbp" / "x.py"
    path.write_text("a = 1\nb = 2\n")
    os.utime(path, ns=(10**18, 10**18))
    m = mutate.Mutation("t", "stbp/x.py", "b = 2", "b = 3", ("tests/t.py",))
    restore = mutate.apply(str(tmp_path), m)
    assert path.read_text() == "a = 1\nb = 3\n"
    restore()
    assert path.read_text() == "a = 1\nb = 2\n" and os.stat(path).st_mtime_ns == 10**18
    bad = mutate.Mutation("t", "stbp/x.py", "c = 4", "c = 5", ("tests/t.py",))
    with pytest.raises(ValueError, match="found 0 times"):
        mutate.apply(str(tmp_path), bad)
