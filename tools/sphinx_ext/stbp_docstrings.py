"""Sphinx extension: let the API page (``book/api.md``) show stbp's docstrings as written,
and its module constants without their values when those are too long to read.

The docstrings state their equations in plain ASCII, in the book's notation
(``U^{t+1} = U^t * f(O^t) + X^{t+1} + b``, ``|x| < a/2``).  Read as reStructuredText,
as autodoc reads them, ``|x|`` is a substitution reference and ``*x`` starts emphasis:
the build fails, or the formula renders mangled.  Before autodoc parses a docstring of
the ``stbp`` package, this escapes ``|`` and ``*`` in its prose, so both read as the
characters they are.  Left alone: ````literal```` spans, roles such as
``:func:`name```, literal blocks (after a line ending in ``::``) and ``* `` bullets.

Every public module has a section on the API page: those that ``book/api.md`` does not
name in an ``automodule`` (a module added since, or a subpackage's modules) get one,
appended when the page is read, so a new module is never left out; write it a section
with a sentence of context in ``book/api.md`` to place it.

Module constants are shown with their value (``RULES = ('exact', 'seed')``) unless its
repr is longer than ``MAX_VALUE`` characters: a kernel's source code or a module such as
``backend.xp`` (whose repr is a path on the build machine) is shown by name only.
"""
from __future__ import annotations

import pkgutil
import re

from sphinx.ext.autodoc import DataDocumenter
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


#: The page that holds the API reference.
API_DOC = "book/api"


def public_modules():
    """``stbp`` and every module and subpackage below it whose name has no part
    starting with _, sorted by name."""
    import stbp
    names = {"stbp"}
    for info in pkgutil.walk_packages(stbp.__path__, prefix="stbp."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.add(info.name)
    return sorted(names)


def missing_sections(source, modules):
    """The part of the API page for the modules that ``source`` has no automodule for."""
    named = set(re.findall(r"^\.\. automodule:: *(\S+)", source, flags=re.M))
    parts = []
    for name in modules:
        if name not in named:
            parts.append(f"\n## `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n"
                         f"   :members:\n```\n")
    return "".join(parts)


def complete_api_page(app, docname, source):
    if docname == API_DOC:
        source[0] += missing_sections(source[0], public_modules())


def reread_api_page(app, env, added, changed, removed):
    """The page depends on the package's list of modules, which Sphinx does not track."""
    return [API_DOC] if API_DOC in env.found_docs else []


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(ShortValueDataDocumenter, override=True)
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("source-read", complete_api_page)
    app.connect("env-get-outdated", reread_api_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
