"""Report the lines of the book's notebooks that are too wide for the page.

    python tools/check_width.py                  # book/*.ipynb, one line per finding
    python tools/check_width.py --summary        # counts per notebook
    python tools/check_width.py book/03_backprop.ipynb --width 80 --code-width 88

Three kinds of line are checked, each reported as ``file:cell:line: kind width > limit``
(cells and lines counted from 0 and 1, as ``nbformat`` and editors count them):

* ``code``: a line of a code cell's source longer than ``--code-width`` (88, the
  project's line length for code);
* ``output``: a line of text output wider than ``--width``: stream outputs (stdout,
  stderr) and the ``text/plain`` of an execute_result or display_data when that is what
  the page shows (no image, HTML, markdown or LaTeX beside it); outputs of cells tagged
  ``remove-output`` or ``remove-cell``, and the hidden outputs of ``glue``, are not shown
  and not checked;
* ``fence``: a line inside a code fence of a markdown cell (```` ``` ````, ``~~~``,
  ```` ```{code-block} ````, ```` ```{code} ````) wider than ``--width``; the content of
  other MyST directives (figures, exercises) is markdown and is not checked, but code
  fences nested in them are.

The default ``--width`` is 77: at a 1280 x 900 window, sphinx-book-theme (the book's HTML
theme) gives a code or output block an inner width of 652 px (outputs 656 px), and its
14 px monospace font (DejaVu Sans Mono, the first of the theme's fonts installed here)
is 8.43 px a character, so 77 characters fit before a line scrolls; measured with
headless Chromium on the built chapter 5 (1440 px and wider windows fit 89).  The book's
stylesheet (``_static/book.css``) sets code cells and their outputs at 12.25 px, at which
a line of 88 characters, the code limit, fits the same column (checked in Chromium on
chapter 2); outputs are held to 77 all the same, so that they fit at the theme's own
size too.

Width is what a terminal shows: ANSI colour codes count nothing, a carriage return goes
back to the start of the line (the last writer of each column wins, as for tqdm bars),
tabs stop every 8 columns, East Asian wide characters count 2 and combining marks 0.

Exit status 1 when any line is over its limit, 0 otherwise.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import unicodedata
from collections import Counter

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CODE_WIDTH = 88
WIDTH = 77
KINDS = ("code", "output", "fence")

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*?)\s*$")
CODE_DIRECTIVES = ("code", "code-block", "sourcecode", "code-cell")
# the mime types MyST-NB renders before text/plain in HTML (its nb_mime_priority)
RICHER = ("application/vnd.jupyter.widget-view+json", "text/html", "image/svg+xml",
          "image/png", "image/jpeg", "image/gif", "text/markdown", "text/latex")
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell"}


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(line: str) -> int:
    """Columns a terminal shows for one line (no newline in it)."""
    pos = end = 0                     # the cursor, and the rightmost column written
    for ch in ANSI.sub("", line):
        if ch == "\r":
            pos = 0
        elif ch == "\t":
            pos += 8 - pos % 8
        else:
            pos += char_width(ch)
        end = max(end, pos)
    return end


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def output_texts(cell) -> list[str]:
    """The text outputs of a code cell that the built page shows."""
    tags = set(cell.get("metadata", {}).get("tags", []))
    if tags & HIDDEN_OUTPUT_TAGS:
        return []
    texts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            texts.append(_text(out.get("text")))
        elif kind in ("execute_result", "display_data"):
            if "scrapbook" in out.get("metadata", {}):     # glue: stored, not shown
                continue
            data = out.get("data", {})
            if "text/plain" in data and not any(m in data for m in RICHER):
                texts.append(_text(data["text/plain"]))
    return texts


def fenced_lines(source: str):
    """(line number, line) of every line inside a code fence of a markdown source."""
    stack: list[tuple[str, int, bool]] = []      # (fence char, length, is code)
    options = False                              # directive options at a block's top
    for number, line in enumerate(source.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            fence, info = m.group(2), m.group(3)
            char, length = fence[0], len(fence)
            if stack and stack[-1][0] == char and length >= stack[-1][1] and not info:
                stack.pop()
                continue
            if not (stack and stack[-1][2]):     # fences open only outside code
                name = re.match(r"\{([\w-]+)\}", info)
                is_code = name is None or name.group(1) in CODE_DIRECTIVES
                stack.append((char, length, is_code))
                options = is_code and name is not None
                continue
        if stack and stack[-1][2]:
            if options and re.match(r"^\s*:[\w-]+:", line):
                continue
            options = False
            yield number, line


def check_notebook(path: str, width: int = WIDTH, code_width: int = CODE_WIDTH):
    """Findings (path, cell, line, kind, width, limit) of one notebook."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for number, line in enumerate(cell.source.splitlines(), 1):
                w = display_width(line)
                if w > code_width:
                    found.append((path, index, number, "code", w, code_width))
            number = 0
            for text in output_texts(cell):
                for line in text.split("\n"):
                    number += 1
                    w = display_width(line)
                    if w > width:
                        found.append((path, index, number, "output", w, width))
                if text.endswith("\n"):
                    number -= 1
        elif cell.cell_type == "markdown":
            for number, line in fenced_lines(cell.source):
                w = display_width(line)
                if w > width:
                    found.append((path, index, number, "fence", w, width))
    return found


def notebooks(paths: list[str]) -> list[str]:
    if not paths:
        return sorted(glob.glob(os.path.join(ROOT, "book", "*.ipynb")))
    out = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(glob.glob(os.path.join(p, "*.ipynb"))))
        else:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*",
                        help="notebooks or folders of notebooks (default: book/*.ipynb)")
    parser.add_argument("--width", type=int, default=WIDTH,
                        help=f"columns for outputs and fenced code (default {WIDTH})")
    parser.add_argument("--code-width", type=int, default=CODE_WIDTH,
                        help=f"columns for code-cell source (default {CODE_WIDTH})")
    parser.add_argument("--summary", action="store_true",
                        help="print counts per notebook instead of every line")
    args = parser.parse_args(argv)

    found, names = [], []
    for path in notebooks(args.paths):
        names.append(path)
        found.extend(check_notebook(path, args.width, args.code_width))

    def short(path: str) -> str:
        rel = os.path.relpath(path, ROOT)
        return path if rel.startswith("..") else rel

    if args.summary:
        counts = Counter((f[0], f[3]) for f in found)
        print(f"{'notebook':32} {'code':>5} {'output':>6} {'fence':>5} {'total':>5}")
        for path in names:
            row = [counts[path, k] for k in KINDS]
            print(f"{short(path):32} {row[0]:5} {row[1]:6} {row[2]:5} {sum(row):5}")
        totals = [sum(counts[p, k] for p in names) for k in KINDS]
        print(f"{'total':32} {totals[0]:5} {totals[1]:6} {totals[2]:5} {sum(totals):5}")
        print(f"(code > {args.code_width} columns; output and fence > {args.width})")
    else:
        for path, cell, line, kind, w, limit in found:
            print(f"{short(path)}:{cell}:{line}: {kind} {w} > {limit}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
