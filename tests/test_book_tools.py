"""The helpers around the book: docstring escaping for the API page, the execution status
page's readers, the bibliography and citation files, and the space-time figure."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "sphinx_ext"))
sys.path.insert(0, str(ROOT / "tools"))

import stbp_docstrings  # noqa: E402
import stbp_status  # noqa: E402


def test_escapes_ascii_math_but_not_markup():
    lines = ["h1(x) = (1/a) * 1[|x| < a/2], see ``a | b * c`` and :func:`f`.",
             "",
             "* ``layer_forward``: U^t = U^{t-1} * f(O^{t-1}), shape (T, *x.shape)",
             "Example::",
             "",
             "    y = a * b  # |x|",
             "",
             "After |the| block."]
    out = stbp_docstrings.escape_lines(list(lines))
    assert out[0] == r"h1(x) = (1/a) \* 1[\|x\| < a/2], see ``a | b * c`` and :func:`f`."
    assert out[2] == r"* ``layer_forward``: U^t = U^{t-1} \* f(O^{t-1}), shape (T, \*x.shape)"
    assert out[5] == "    y = a * b  # |x|"           # literal block: untouched
    assert out[7] == r"After \|the\| block."            # after the block: escaped again


def test_escaped_docstrings_parse_without_warnings():
    docutils = pytest.importorskip("docutils.core")
    from stbp import gradcheck, surrogates
    for obj in (surrogates.Rectangular, surrogates.Polynomial, gradcheck.check_gradients):
        lines = stbp_docstrings.escape_lines(obj.__doc__.splitlines())
        html = docutils.publish_parts("\n".join(lines), writer_name="html",
                                      settings_overrides={"report_level": 2,
                                                          "halt_level": 2})["body"]
        assert "|" in html and "problematic" not in html


def test_notebook_info_counts_code_cells_and_outputs(tmp_path):
    cells = [{"cell_type": "markdown", "source": "x", "metadata": {}},
             {"cell_type": "code", "source": "1", "metadata": {}, "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": "1"}]},
             {"cell_type": "code", "source": "x = 2", "metadata": {}, "outputs": []}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {
        "language_info": {"version": "3.11.7"}}}))
    assert stbp_status.notebook_info(path) == {"cells": 2, "with_output": 1,
                                               "python": "3.11.7"}


def test_git_state_gives_the_commit_date_and_local_changes(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    path = tmp_path / "nb.ipynb"
    path.write_text("{}")
    subprocess.run(git + ["add", "nb.ipynb"], cwd=tmp_path, check=True)
    env = dict(os.environ, GIT_COMMITTER_DATE="2026-01-02T03:04:05+00:00")
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=tmp_path, check=True, env=env)
    when, dirty = stbp_status.git_state(path)
    assert (when.year, when.month, when.hour, dirty) == (2026, 1, 3, False)
    path.write_text("{ }")
    assert stbp_status.git_state(path)[1] is True
    other = tmp_path / "untracked.ipynb"
    other.write_text("{}")
    assert stbp_status.git_state(other) == (None, None)


def test_read_report_counts_cells_per_notebook(tmp_path):
    path = tmp_path / "report.xml"
    path.write_text(
        '<?xml version="1.0"?><testsuites><testsuite timestamp="2026-01-02T03:04:05+00:00">'
        '<testcase classname="book.01_neuron.ipynb" name="Cell 0" time="1.5"/>'
        '<testcase classname="book.01_neuron.ipynb" name="Cell 1" time="0.5">'
        '<failure message="differs"/></testcase>'
        '<testcase classname="book.01_neuron.ipynb" name="Cell 2" time="0"><skipped/></testcase>'
        '<testcase classname="tests.test_neuron" name="test_f" time="0.1"/>'
        '</testsuite></testsuites>')
    when, results = stbp_status.read_report(path)
    assert when.year == 2026 and when.hour == 3
    assert results["book/01_neuron.ipynb"] == {"passed": 1, "failed": 1, "skipped": 1,
                                               "seconds": 2.0}
    assert results["tests"]["passed"] == 1


def test_every_cited_key_is_in_the_bibliography():
    bib = (ROOT / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, flags=re.M))
    assert len(keys) == bib.count("\n@") + bib.startswith("@")   # no duplicate keys
    cited = set()
    for page in (ROOT / "book").glob("*.md"):
        cited |= set(re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()))
    for page in (ROOT / "book").glob("*.ipynb"):
        text = "".join("".join(c["source"]) for c in json.loads(page.read_text())["cells"])
        cited |= set(re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text))
    cited = {k.strip() for group in cited for k in group.split(",")}
    assert cited <= keys, cited - keys


def test_spacetime_figure_marks_the_dropped_path():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from stbp.figures import DROPPED, draw_spacetime

    fig, ax = plt.subplots()
    draw_spacetime(ax)
    colors = [matplotlib.colors.to_hex(a.arrow_patch.get_edgecolor())
              for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert colors.count(matplotlib.colors.to_hex(DROPPED)) == 4   # O21>U22>U32>O32>L
    with pytest.raises(ValueError, match="T must be an integer >= 3"):
        draw_spacetime(ax, T=2)
    plt.close(fig)


def test_merged_streams_keep_only_what_a_terminal_shows():
    import stbp_streams
    frames = [{"output_type": "stream", "name": "stderr", "text": f"\repoch 1: {p:3d}%|bar|"}
              for p in (0, 50, 100)]
    outputs = (frames[:2]
               + [{"output_type": "stream", "name": "stdout", "text": "epoch 1: loss 0.1\n"}]
               + frames[2:]
               + [{"output_type": "stream", "name": "stderr", "text": "\r" + " " * 30},
                  {"output_type": "stream", "name": "stderr", "text": "\r"},
                  {"output_type": "display_data", "data": {}},
                  {"output_type": "stream", "name": "stdout", "text": "epoch 2: loss 0.05\n"}])
    merged = stbp_streams.coalesce_streams(outputs)
    assert [o["output_type"] for o in merged] == ["stream", "display_data"]
    assert merged[0] == {"output_type": "stream", "name": "stdout",
                         "text": "epoch 1: loss 0.1\nepoch 2: loss 0.05\n"}
    assert outputs[2]["text"] == "epoch 1: loss 0.1\n"          # the notebook is untouched
    kept = stbp_streams.coalesce_streams(frames)                  # a bar left on screen
    assert kept[0]["text"] == "epoch 1: 100%|bar|\n"
    assert stbp_streams.as_terminal("abcdef\rXY\b\bZ") == "ZYcdef"


def test_api_page_gets_a_section_for_every_module_it_does_not_name():
    modules = stbp_docstrings.public_modules()
    assert {"stbp", "stbp.network", "stbp.backward"} <= set(modules)
    assert not any(part.startswith("_") for m in modules for part in m.split("."))
    page = (ROOT / "book" / "api.md").read_text()
    assert stbp_docstrings.missing_sections(page, modules) == ""   # all named by hand
    added = stbp_docstrings.missing_sections(".. automodule:: stbp.a\n", ["stbp.a", "stbp.b"])
    assert added == "\n## `stbp.b`\n\n```{eval-rst}\n.. automodule:: stbp.b\n   :members:\n```\n"
