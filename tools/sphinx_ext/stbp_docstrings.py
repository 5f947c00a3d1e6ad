"""Sphinx extension: let the API page (``book/api.md``) show stbp's docstrings as written,
and its module constants without their values when those are too long to read.

The docstrings state their equations in plain ASCII, in the book's notation
(``U^{t+1} = U^t * f(O^t) + X^{t+1} + b``, ``|x| < a/2``).  Read as reStructuredText,
as autodoc reads them, ``|x|`` is a substitution reference and ``*x`` starts emphasis:
the build fails, or the formula renders mangled.  Before autodoc parses a docstring of
the ``stbp`` package, this escapes ``|`` and ``*`` in its prose, so both read as the
characters they are.  Left alone: ````literal```` spans, roles such as
``:func:`name```, literal blocks (after a line ending in ``::``) and ``* `` bullets.

The build warns (and so, under ``-W``, fails) when a public module of the package has no
``automodule`` on the API page, so that a new module cannot be left out of it.

Module constants are shown with their value (``RULES = ('exact', 'seed')``) unless its
repr is longer than ``MAX_VALUE`` characters: a kernel's source code or a module such as
``backend.xp`` (whose repr is a path on the build machine) is shown by name only.
"""
from __future__ import annotations

import pkgutil
import re

from sphinx.ext.autodoc import DataDocumenter
from sphinx.util import logging
from sphinx.util.inspect import object_description

#: Longest repr of a module constant that the API page shows as its value.
MAX_VALUE = 80

#: Inline spans to leave alone: ``literal`` and :role:`target`.
_KEEP = re.compile(r"``.+?``|:[\w:.-]+:`[^`]*`")
_BULLET = re.compile(r"^(\s*)\* ")


def _escape(text):
    """Escape | and * in text outside ``literal`` spans and roles."""
    out, pos = [], 0
    for match in _KEEP.finditer(text):
        out.append(re.sub(r"([|*])", r"\\\1", text[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(re.sub(r"([|*])", r"\\\1", text[pos:]))
    return "".join(out)


def escape_lines(lines):
    """The docstring ``lines`` with | and * escaped in prose, in place and returned."""
    literal_indent = None                 # indentation of the paragraph that ended in '::'
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                continue                  # inside the literal block
            literal_indent = None
        bullet = _BULLET.match(line)
        head = bullet.group(0) if bullet else ""
        lines[i] = head + _escape(line[len(head):])
        if line.rstrip().endswith("::"):
            literal_indent = indent
    return lines


def process_docstring(app, what, name, obj, options, lines):
    if name == "stbp" or name.startswith("stbp."):
        escape_lines(lines)


class ShortValueDataDocumenter(DataDocumenter):
    """autodoc's module-constant documenter, showing only values of a readable length."""

    def should_suppress_value_header(self):
        if super().should_suppress_value_header():
            return True
        try:
            return len(object_description(self.object)) > MAX_VALUE
        except ValueError:
            return True


logger = logging.getLogger(__name__)


def public_modules():
    """``stbp`` and its modules and subpackages whose names do not start with _."""
    import stbp
    return {"stbp"} | {f"stbp.{m.name}" for m in pkgutil.iter_modules(stbp.__path__)
                       if not m.name.startswith("_")}


def check_api_coverage(app, env):
    documented = set(env.get_domain("py").modules)
    for name in sorted(public_modules() - documented):
        logger.warning(f"module {name} has no section on the API page (book/api.md): "
                       f"add one with '.. automodule:: {name}'", type="stbp", subtype="api")


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(ShortValueDataDocumenter, override=True)
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("env-check-consistency", check_api_coverage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
