"""Sphinx extension: a bibliography style whose labels match the book's citations.

The chapters cite author-year, ``{cite:p}`wu2018stbp``` -> [Wu et al., 2018]
(``bibtex_reference_style: author_year``).  sphinxcontrib-bibtex labels the entries of
the bibliography page with the formatting style's label style, which for pybtex's
"plain" is a number: [1], [2], ...  This registers the style ``authoryear``: pybtex's
"plain" (entries sorted by author, then year, then title) with labels "Wu et al., 2018",
so that the bibliography shows each entry under the label the text cites it by.
"""
from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person):
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(entry):
    """'Wu et al., 2018', 'Pehle and Pedersen, 2021' or 'Gerstner, 2014' for one entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:
        who = entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year(e) for e in sorted_entries]
        for i, label in enumerate(labels):       # 2023a, 2023b when two would collide
            same = [j for j, other in enumerate(labels) if other == label]
            yield label if len(same) == 1 else label + "abcdefghijklmnopqrstuvwxyz"[same.index(i)]


class AuthorYearStyle(PlainStyle):
    default_label_style = "authoryear"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
