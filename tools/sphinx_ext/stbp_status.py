"""Sphinx extension for the book's execution status page (``book/status.md``).

The book is built with ``execute_notebooks: "off"``: every chapter shows the outputs
committed with it, and ``make test`` checks those outputs by re-running every chapter
under nbval just before it builds the book.  MyST-NB's ``{nb-exec-table}`` lists only
notebooks that the build itself executed, so under "off" it would be an empty table.
The directive ``{execution-status}`` says instead what was executed, when, and whether
it was checked:

* for every chapter, when its outputs were committed (the date of the last git commit
  that touched the notebook, and whether it has changed since; ``tools/execute.py``
  strips nbclient's per-cell timestamps, which would change on every run), how many
  code cells it has, and the kernel's Python version;
* the result of the last nbval run, per chapter and with its run time, read from the
  JUnit report that ``make test`` writes (``_build/test-report.xml``), with a warning
  when a chapter changed after it;
* the packages and the array backend of the environment that built the page.

When the build does execute notebooks (``execute_notebooks`` other than "off"), the
directive also emits MyST-NB's own execution table.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

#: Where ``make test`` writes pytest's JUnit report, relative to the book's root.
REPORT = "_build/test-report.xml"

#: Distributions whose versions the page lists, in this order.
PACKAGES = ("stbp", "numpy", "matplotlib", "tqdm", "numba", "cupy-cuda12x", "nbval",
            "jupyter-book", "myst-nb", "sphinx", "sphinxcontrib-bibtex", "sphinx-exercise",
            "sphinx-proof")


def _stamp(text):
    """An ISO 8601 timestamp (as nbclient and pytest write them) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc(when):
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def notebook_info(path):
    """A notebook's ``cells`` (code cells), ``with_output`` (code cells that have stored
    outputs) and ``python`` (the kernel's version recorded in its metadata)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    return {"cells": len(code), "with_output": sum(1 for c in code if c.get("outputs")),
            "python": nb.get("metadata", {}).get("language_info", {}).get("version", "")}


def git_state(path):
    """(date of the last commit that touched path, whether path differs from it), or
    (None, None) outside a git checkout."""
    folder = Path(path).parent
    try:
        date = subprocess.run(["git", "log", "-1", "--format=%cI", "--", Path(path).name],
                              cwd=folder, capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", Path(path).name],
                               cwd=folder, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if date.returncode != 0 or not date.stdout.strip():
        return None, None
    return _stamp(date.stdout.strip()), bool(dirty.stdout.strip())


def read_report(path):
    """The nbval results in a pytest JUnit report: (timestamp, {notebook path: counts}).

    Counts are a dict of ``passed``, ``failed`` and ``skipped`` cells and ``seconds``.
    Test cases that are not notebook cells (the unit tests) are summed under "tests".
    """
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    when, results = None, {}
    for suite in suites:
        if suite.get("timestamp"):
            when = _stamp(suite.get("timestamp"))
        for case in suite.iter("testcase"):
            cls = case.get("classname", "")
            key = cls[:-len(".ipynb")].replace(".", "/") + ".ipynb" if cls.endswith(".ipynb") \
                else "tests"
            counts = results.setdefault(key, {"passed": 0, "failed": 0, "skipped": 0,
                                               "seconds": 0.0})
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
            counts["seconds"] += float(case.get("time") or 0)
    return when, results


def versions():
    """[(distribution, version)] for the PACKAGES installed in this environment."""
    out = []
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    return out


def _table(header, rows):
    table = nodes.table(classes=["colwidths-auto"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for cells, parent in [(header, head)] + [(r, body) for r in rows]:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += cell if isinstance(cell, nodes.Node) else nodes.paragraph(text=str(cell))
            row += entry
        parent += row
    return table


def _para(*parts):
    p = nodes.paragraph()
    for part in parts:
        p += part if isinstance(part, nodes.Node) else nodes.Text(part)
    return p


class ExecutionStatus(SphinxDirective):
    """``{execution-status}``: what the book's outputs come from (see the module docstring)."""

    has_content = False

    def run(self):
        env, config = self.env, self.env.config
        env.stbp_status_docs = getattr(env, "stbp_status_docs", set()) | {env.docname}
        root = Path(env.srcdir)
        out = []
        mode = config.nb_execution_mode
        if mode == "off":
            out.append(_para(
                "This build executed no notebook (",
                nodes.literal(text='execute_notebooks: "off"'),
                "): every chapter shows the outputs committed with it. ",
                nodes.literal(text="make test"),
                " checks them first: it re-runs every chapter under nbval, which fails when "
                "a cell's output differs from the committed one (figures and cells tagged ",
                nodes.literal(text="nbval-ignore-output"), " excepted)."))
        else:
            from myst_nb.ext.execution_tables import METADATA_KEY, ExecutionStatsNode
            from myst_nb.sphinx_ import NbMetadataCollector
            NbMetadataCollector.set_doc_data(env, env.docname, METADATA_KEY, True)
            out.append(_para(f"This build executed the notebooks (execute_notebooks: "
                             f"\"{mode}\"); MyST-NB's record of that run:"))
            out.append(ExecutionStatsNode())

        report = root / REPORT
        when, results = (None, {})
        if report.is_file():
            env.note_dependency(str(report))
            when, results = read_report(report)
        chapters = sorted(d for d in env.found_docs
                          if str(env.doc2path(d)).endswith(".ipynb"))
        rows, stale = [], []
        for doc in chapters:
            path = Path(env.doc2path(doc))
            env.note_dependency(str(path))
            info = notebook_info(path)
            rel = path.relative_to(root).as_posix()
            committed, dirty = git_state(path)
            if committed is None:
                when_committed = "not in a git checkout"
            else:
                when_committed = _utc(committed) + ("; changed since" if dirty else "")
            check = results.get(rel)
            if check is None:
                verdict = "not in the report"
            else:
                verdict = (f"{check['passed']} passed, {check['failed']} failed"
                           + (f", {check['skipped']} skipped" if check["skipped"] else "")
                           + f" in {check['seconds']:.1f} s")
                if when and dt.datetime.fromtimestamp(path.stat().st_mtime,
                                                      dt.timezone.utc) > when:
                    stale.append(rel)
                    verdict += "; changed since"
            link = addnodes.pending_xref("", nodes.inline(text=doc), refdomain="std",
                                         reftype="doc", reftarget="/" + doc,
                                         refexplicit=False)
            rows.append([nodes.paragraph("", "", link), when_committed,
                         f"{info['with_output']} of {info['cells']}", info["python"],
                         verdict])
        out.append(nodes.rubric(text="The chapters' committed outputs"))
        out.append(_table(["chapter", "last committed", "code cells with output",
                           "kernel Python", "nbval: cells"], rows))
        if when is None:
            out.append(_para("No nbval report was found (", nodes.literal(text=REPORT),
                             "): this build was not preceded by ",
                             nodes.literal(text="make test"),
                             ", so the outputs were rendered as committed, unchecked."))
        else:
            tests = results.get("tests")
            line = [f"nbval report of {_utc(when)}"]
            if tests:
                line.append(f"; unit tests in the same run: {tests['passed']} passed, "
                            f"{tests['failed']} failed, {tests['skipped']} skipped")
            line.append(".")
            if stale:
                line.append(" Changed after that run, so not covered by it: "
                            + ", ".join(stale) + ".")
            out.append(_para(*line))

        import stbp
        from stbp import backend
        out.append(nodes.rubric(text="The environment that built this page"))
        env_rows = [["Python", platform.python_version()],
                    ["platform", platform.platform()],
                    ["array backend", f"{backend.name}"
                     + (" (fused kernels)" if backend.fused is not None else "")]]
        env_rows += [[name, ver] for name, ver in versions()]
        env_rows.append(["stbp imported from",
                         nodes.paragraph("", "", nodes.literal(
                             text=os.path.relpath(Path(stbp.__file__).parent, root)))])
        out.append(_table(["", "version"], env_rows))
        out.append(_para(f"Page built {_utc(dt.datetime.now(dt.timezone.utc))}."))
        return out


def _always_outdated(app, env, added, changed, removed):
    """Re-read the pages with the directive on every build: the environment and the
    report they describe are not Sphinx sources, and may change between builds."""
    return sorted(getattr(env, "stbp_status_docs", set()) & env.found_docs)


def _purge(app, env, docname):
    getattr(env, "stbp_status_docs", set()).discard(docname)


def _merge(app, env, docnames, other):
    env.stbp_status_docs = (getattr(env, "stbp_status_docs", set())
                            | getattr(other, "stbp_status_docs", set()))


def setup(app):
    app.add_directive("execution-status", ExecutionStatus)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
