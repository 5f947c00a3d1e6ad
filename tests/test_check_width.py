"""tools/check_width.py: long code lines, wide outputs and wide fenced lines are caught,
hidden outputs and clean notebooks pass."""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import (new_code_cell, new_markdown_cell, new_notebook, new_output)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import check_width  # noqa: E402


def write(tmp_path, cells, name="nb.ipynb"):
    path = tmp_path / name
    nbformat.write(new_notebook(cells=cells), str(path))
    return str(path)


def kinds(path, **limits):
    return [(f[1], f[2], f[3], f[4]) for f in check_width.check_notebook(path, **limits)]


def test_clean_notebook_passes(tmp_path, capsys):
    cells = [new_markdown_cell("Prose lines are not checked, however long they are: "
                               + "word " * 40 + "\n\n```python\nx = 1\n```"),
             new_code_cell("x = 1\n" + "y = '" + "a" * 80 + "'",          # 86 columns
                           outputs=[new_output("stream", name="stdout",
                                               text="b" * 77 + "\n" + "c" * 10 + "\n")])]
    path = write(tmp_path, cells)
    assert kinds(path) == []
    assert check_width.main([path]) == 0
    assert capsys.readouterr().out == ""


def test_long_code_line_is_caught(tmp_path, capsys):
    line = "z = " + "1 + " * 21 + "1"                                      # 89 columns
    path = write(tmp_path, [new_code_cell("a = 1\n" + line)])
    assert kinds(path) == [(0, 2, "code", 89)]
    assert check_width.main([path]) == 1
    assert f"{path}:0:2: code 89 > 88" in capsys.readouterr().out
    assert kinds(path, code_width=89) == []


def test_wide_outputs_are_caught(tmp_path):
    stream = new_output("stream", name="stdout", text="ok\n" + "x" * 78 + "\n")
    result = new_output("execute_result", data={"text/plain": "y" * 100},
                        execution_count=1)
    path = write(tmp_path, [new_code_cell("print(1)", outputs=[stream, result])])
    # lines are counted through the cell's shown outputs: 2 in the stream, 3 the result
    assert kinds(path) == [(0, 2, "output", 78), (0, 3, "output", 100)]
    assert kinds(path, width=100) == []


def test_hidden_outputs_are_not_checked(tmp_path):
    wide = "w" * 120
    image = new_output("display_data", data={"text/plain": wide, "image/png": "iVBO"})
    glued = new_output("display_data", data={"text/plain": wide},
                       metadata={"scrapbook": {"name": "x", "mime_prefix": ""}})
    removed = new_code_cell("1", outputs=[new_output("stream", name="stdout", text=wide)])
    removed.metadata["tags"] = ["remove-output"]
    path = write(tmp_path, [new_code_cell("1", outputs=[image, glued]), removed])
    assert kinds(path) == []


def test_terminal_width_rules():
    assert check_width.display_width("\x1b[31m" + "r" * 10 + "\x1b[0m") == 10
    assert check_width.display_width("a" * 90 + "\r" + "b" * 5) == 90
    assert check_width.display_width("\tx") == 9
    assert check_width.display_width("数字") == 4
    assert check_width.display_width("e\u0301") == 1


def test_fenced_lines_in_markdown_are_caught(tmp_path):
    md = "\n".join(["Some prose " * 12,                                     # line 1
                    "```bash",                                             # 2
                    "python -m stbp.reproduce " + "--option " * 7,         # 3: 88 wide
                    "```",                                                 # 4
                    "```{figure} a.png",                                   # 5
                    "A caption, markdown, not code: " + "long " * 20,      # 6
                    "```",                                                 # 7
                    "````{exercise}",                                      # 8
                    "```{code-block} python",                              # 9
                    ":caption: " + "c" * 80,                               # 10: option
                    "q = '" + "q" * 80 + "'",                              # 11: 86 wide
                    "```",                                                 # 12
                    "````"])                                               # 13
    path = write(tmp_path, [new_markdown_cell(md)])
    found = kinds(path)
    assert [(line, kind) for _, line, kind, _ in found] == [(3, "fence"), (11, "fence")]
    assert kinds(path, width=88) == []


def test_summary_counts_per_notebook(tmp_path, capsys):
    bad = write(tmp_path, [new_code_cell("x" * 95)], name="bad.ipynb")
    good = write(tmp_path, [new_code_cell("x")], name="good.ipynb")
    assert check_width.main(["--summary", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in out[1:-1]}
    assert rows[bad] == ["1", "0", "0", "1"]
    assert rows[good] == ["0", "0", "0", "0"]
    assert rows["total"] == ["1", "0", "0", "1"]
