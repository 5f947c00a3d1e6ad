"""Turn the chapters' plain-text references to other chapters into links.

    python tools/xref.py book/03_backprop.ipynb ...   # rewrite in place
    python tools/xref.py --check book/*.ipynb        # exit 1 where a plain one is left

In markdown cells, outside code spans, code fences, math and existing roles, "chapter 3"
becomes {doc}`chapter 3 <03_backprop>` (the case of the word kept), and in "chapters 2
and 3" each number becomes a link.  Code cells and outputs are left alone.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parent.parent / "book"
NUMBERS = {int(p.name[:2]): p.stem for p in BOOK.glob("[0-9][0-9]_*.ipynb")}
# spans that are never rewritten: fences, math blocks and inline math, code spans, roles
# (a citation followed by "chapter N" names a chapter of the cited work, not of this book)
PROTECTED = re.compile(r"\{cite:[a-z]+\}`[^`]*`,? [Cc]hapters? [\d, and]*\d|```.*?```"
                       r"|\$\$.*?\$\$|\$[^$\n]+\$|\{[a-z:]+\}`[^`]*`|`[^`\n]*`", re.S)
SINGLE = re.compile(r"\b([Cc]hapter) (\d)\b")
PLURAL = re.compile(r"\b([Cc]hapters) ((?:\d, )*\d(?:,? and \d)?)\b")


def _link(word, n):
    target = NUMBERS.get(int(n))
    return f"{{doc}}`{word} {n} <{target}>`" if target else f"{word} {n}"


def rewrite_text(text):
    """text with its plain chapter references linked (protected spans untouched)."""
    out, last = [], 0
    for m in PROTECTED.finditer(text):
        out.append(_rewrite_plain(text[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_rewrite_plain(text[last:]))
    return "".join(out)


def _number(n):
    target = NUMBERS.get(int(n))
    return f"{{doc}}`{n} <{target}>`" if target else n


def _rewrite_plain(text):
    def plural(m):
        nums = re.sub(r"\d", lambda d: _number(d.group(0)), m.group(2))
        return f"{m.group(1)} {nums}"
    text = PLURAL.sub(plural, text)
    return SINGLE.sub(lambda m: _link(m.group(1), m.group(2)), text)


def plain_left(text):
    """The plain chapter references left in text (outside protected spans)."""
    stripped = PROTECTED.sub("", text)
    return SINGLE.findall(stripped) + PLURAL.findall(stripped)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    left = 0
    for path in map(Path, args.notebooks):
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            text = cell.source
            if args.check:
                found = plain_left(text)
                left += len(found)
                for f in found:
                    print(f"{path}: plain reference {' '.join(f)}")
                continue
            new = rewrite_text(text)
            if new != text:
                cell.source = new
                changed = True
        if changed:
            nbformat.write(nb, path)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
