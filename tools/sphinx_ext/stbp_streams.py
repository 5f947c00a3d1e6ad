"""Sphinx extension: ``nb_merge_streams`` that leaves no progress-bar frames.

A tqdm bar in a notebook writes one stream output per frame, each starting with a
carriage return (``"\\repoch 1/2:  10%|..."``), and ends with ``"\\r" + spaces + "\\r"``
when it clears itself (``leave=False``).  A terminal shows only the last state of each
line.  MyST-NB 1.x's ``nb_merge_streams`` joins the outputs of one stream with a newline
after each (``myst_nb.core.utils.coalesce_streams``), so every frame ends up on a line of
its own and the page shows the whole animation, frame by frame.

This replaces the function that MyST-NB's renderer calls with one that joins the outputs
of each stream as they were written and then applies carriage returns and backspaces as
a terminal does: a frame overwrites the one before it, a cleared bar leaves nothing, and
an output left empty is dropped.  It changes only how the build renders outputs, never a
notebook.
"""
from __future__ import annotations

import copy

from sphinx.util import logging

logger = logging.getLogger(__name__)


def as_terminal(text):
    """What a terminal shows after printing ``text``: per line, \\r returns to column 0
    and later characters overwrite earlier ones, \\b steps back one column; trailing
    spaces are dropped."""
    lines = []
    for raw in text.split("\n"):
        buf, col = [], 0
        for ch in raw:
            if ch == "\r":
                col = 0
            elif ch == "\b":
                col = max(0, col - 1)
            else:
                if col < len(buf):
                    buf[col] = ch
                else:
                    buf.append(ch)
                col += 1
        lines.append("".join(buf).rstrip())
    return "\n".join(lines)


def coalesce_streams(outputs):
    """Merge each stream's outputs (in the place of its first) and render them as a
    terminal would; drop those left blank. Other outputs keep their order."""
    merged, streams = [], {}
    for output in outputs or []:
        if output.get("output_type") != "stream":
            merged.append(output)
            continue
        name = output.get("name")
        if name in streams:
            streams[name]["text"] += output.get("text", "")
        else:
            streams[name] = copy.copy(output)
            streams[name]["text"] = output.get("text", "")
            merged.append(streams[name])
    for output in streams.values():
        text = as_terminal(output["text"]).strip("\n")
        output["text"] = text + "\n" if text.strip() else ""
    return [o for o in merged if o.get("output_type") != "stream" or o["text"]]


def setup(app):
    try:
        from myst_nb.core import render
    except ImportError:                     # pragma: no cover - MyST-NB is a dependency
        logger.warning("stbp_streams: MyST-NB not found; stream outputs are not merged")
    else:
        if not hasattr(render, "coalesce_streams"):
            logger.warning("stbp_streams: this MyST-NB has no render.coalesce_streams; "
                           "progress bars may show every frame")
        render.coalesce_streams = coalesce_streams
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
