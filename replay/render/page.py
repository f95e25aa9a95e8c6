"""The self-contained HTML page both ``report.html`` and ``comparison.html`` are: head and
style, tables, and plotly figures with their captions, small enough to mail.

plotly.js (4.8 MB as shipped) and the figures' data are each packed once, gzip-compressed
and base64-encoded, inline in the page; a short script unpacks them with the browser's own
``DecompressionStream`` (Chrome 80, Firefox 113, Safari 16.4 and later) and draws every
figure. Nothing is fetched, so the page opens offline; the same inputs give the same bytes
(gzip without a time stamp). A browser that cannot unpack says so on the page.
"""

from __future__ import annotations

import base64
import gzip
import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import plotly.graph_objects as go
from plotly.io.json import to_json_plotly

#: Written on <html data-plots=...>: "loading" until every figure is drawn, then "drawn"
#: (or "failed"); tests/render_report.py waits for it.
LOADING, DRAWN, FAILED = "loading", "drawn", "failed"
CONFIG = {"displaylogo": False, "responsive": True}

#: The style of every page; a page adds its own rules after it.
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1280px;
       margin: 0 auto; padding: 0 16px 48px; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 18px; margin-top: 36px;
     border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums;
                                     white-space: nowrap; }
figure { margin: 8px 0 20px; } figcaption { color: #555; font-size: 12.5px; }
"""

_UNPACK = """
(async () => {
  const root = document.documentElement;
  const unpack = async (id) => {
    const text = atob(document.getElementById(id).textContent.trim());
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  };
  try {
    if (typeof DecompressionStream === "undefined") {
      throw new Error("this browser cannot unpack the figures (it has no " +
                      "DecompressionStream: use Chrome 80, Firefox 113, Safari 16.4 or later)");
    }
    window.PlotlyConfig = {MathJaxConfig: "local"};
    const script = document.createElement("script");
    script.textContent = await unpack("packed-plotly-js");
    document.head.appendChild(script);
    const figures = JSON.parse(await unpack("packed-figures"));
    for (const [id, fig] of Object.entries(figures)) {
      await Plotly.newPlot(id, fig.data, fig.layout, fig.config);
    }
    root.dataset.plots = "drawn";
  } catch (error) {
    root.dataset.plots = "failed";
    for (const div of document.querySelectorAll(".plotly-graph-div")) {
      div.textContent = "The figure could not be drawn: " + error.message;
    }
    console.error(error);
  }
})();
"""


@dataclass(frozen=True)
class Plot:
    """A figure and the sentence under it (what is drawn, and how it was thinned)."""

    figure: go.Figure
    caption: str


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain HTML table of text (values formatted by :func:`replay.render.cells.cell`);
    a cell that reads as a number is right-aligned in tabular figures."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for value in row:
            text = str(value)
            numeric = text[:1].isdigit() or (text[:1] in "-−" and text[1:2].isdigit())
            cells.append(f"<td class='num'>{html.escape(text)}</td>" if numeric
                         else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The empty div a figure is drawn into, at the figure's height."""
    height = fig.layout.height or 450
    return (f"<div id='{html.escape(div_id)}' class='plotly-graph-div' "
            f"style='height:{int(height)}px; width:100%'></div>")


class Page:
    """A page being written: HTML parts and plots, in the order added; :meth:`html` is the
    whole page, with plotly.js and the figures packed once."""

    def __init__(self, title: str, css: str = "") -> None:
        """``css``: the page's own rules, after the kit's :data:`CSS`."""
        self.title = title
        self.css = CSS + css
        self._body: list[str] = []
        self._figures: dict[str, go.Figure] = {}

    @property
    def plots(self) -> int:
        """The plots added so far."""
        return len(self._figures)

    def add(self, *parts: str) -> None:
        """HTML, as it is."""
        self._body.extend(parts)

    def plot(self, plot: Plot, div_id: str) -> None:
        """A figure, drawn into the div ``div_id``, with its caption beneath."""
        if div_id in self._figures:
            raise ValueError(f"two figures on one page with the id {div_id!r}")
        self._figures[div_id] = plot.figure
        self._body.append(f"<figure>{figure_div(plot.figure, div_id)}"
                          f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>")

    def html(self) -> str:
        """The whole page: the parts, then plotly.js and the figures, packed, and the
        script that draws them (none when there is no figure)."""
        packed = ""
        if self._figures:
            data = {k: {**f.to_plotly_json(), "config": CONFIG}
                    for k, f in self._figures.items()}
            packed = (f"<script type='application/gzip' id='packed-plotly-js'>{_plotly_js()}"
                      "</script>\n<script type='application/gzip' id='packed-figures'>"
                      f"{_pack(to_json_plotly(data))}</script>\n<script>{_UNPACK}</script>\n")
        state = LOADING if self._figures else DRAWN
        return ("<!DOCTYPE html>\n"
                f"<html lang='en' data-plots='{state}'>\n<head>\n<meta charset='utf-8'>\n"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{self.css}</style>\n"
                "</head>\n<body>\n" + "\n".join(self._body) + "\n" + packed
                + "</body>\n</html>\n")


def _pack(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9,
                                          mtime=0)).decode("ascii")


@cache
def _plotly_js() -> str:
    """plotly.js as shipped with the plotly package, packed (once per process)."""
    from plotly.offline import get_plotlyjs

    return _pack(get_plotlyjs())
