"""The report's one HTML page: sections titled by the question each answers, the static
figures embedded as PNG data, the interactive views with plotly.js embedded once.

The page is self-contained and offline: it loads nothing, from the network or beside it, so
it can be mailed or archived alone. The same PNGs are also written beside it (for papers and
CI). While a watched run is going, the page reloads itself (``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

from tuner.report.figure import Drawn

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } img { max-width: 100%; display: block; margin: .5em 0; }
figure { margin: .5em 0 1.5em; } figcaption { font-size: .9em; color: #444; }
.view { border: 1px solid #eee; margin: .5em 0; } .live { color: #a60; font-weight: bold; }
details summary { cursor: pointer; color: #555; font-size: .9em; }
"""


@dataclass
class View:
    """An interactive plotly view: its id in the page, the figure, and what to do with it."""

    name: str
    figure: Any  # a plotly Figure
    caption: str = ""


@dataclass
class Folded:
    """A static figure shown folded under its interactive twin."""

    drawn: Drawn


@dataclass
class Section:
    """One section: the question it answers and its parts in order (HTML text, figures, views)."""

    question: str
    parts: list[str | Drawn | View | Folded] = field(default_factory=list)

    @property
    def figures(self) -> list[Drawn]:
        return [p if isinstance(p, Drawn) else p.drawn for p in self.parts if isinstance(p, (Drawn, Folded))]

    @property
    def views(self) -> list[View]:
        return [p for p in self.parts if isinstance(p, View)]


def render(title: str, subtitle: str, sections: list[Section], refresh: int | None = None) -> str:
    """The whole page. ``refresh``: seconds after which the browser reloads it (None: never)."""
    views = [v for s in sections for v in s.views]
    head = [f'<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{STYLE}</style>']
    if refresh is not None:
        head.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    if views:
        from tuner.report.interactive import plotly_js

        head.append(f"<script>{plotly_js()}</script>")
    body = [f"<h1>{html.escape(title)}</h1>", p(subtitle)]
    if refresh is not None:
        body.append(
            f'<p class="live">The run is still going: this page is rewritten and reloads every {refresh} s.</p>'
        )
    for s in sections:
        body.append(f"<section>\n<h2>{html.escape(s.question)}</h2>\n{''.join(_part(x) for x in s.parts)}</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _part(x: str | Drawn | View | Folded) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, Drawn):
        return figure(x)
    if isinstance(x, Folded):
        return f"<details><summary>static figure ({html.escape(x.drawn.name)})</summary>{figure(x.drawn)}</details>\n"
    from tuner.report.interactive import to_div

    caption = f"<figcaption>{html.escape(x.caption)}</figcaption>" if x.caption else ""
    return f'<figure class="view" data-view="{html.escape(x.name)}">{to_div(x.figure, x.name)}{caption}</figure>\n'


def figure(d: Drawn) -> str:
    """A static figure, embedded as PNG data; ``data-file`` names its copy beside the page."""
    data = base64.b64encode(d.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" data-file="{html.escape(d.name)}" '
        f'alt="{html.escape(d.alt)}"></figure>\n'
    )


def p(text: str) -> str:
    """A paragraph of plain text."""
    return f"<p>{html.escape(text)}</p>\n"


def table(head: list[str], rows: list[list[str]], header: bool = True) -> str:
    """A table of plain-text cells."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out) + "\n</table>\n"
