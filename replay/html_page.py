"""A self-contained HTML page of tables and plotly figures, small enough to mail.

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
from functools import cache

import plotly.graph_objects as go
from plotly.io.json import to_json_plotly

#: Written on <html data-plots=...>: "loading" until every figure is drawn, then "drawn"
#: (or "failed"); tests/render_report.py waits for it.
LOADING, DRAWN, FAILED = "loading", "drawn", "failed"
CONFIG = {"displaylogo": False, "responsive": True}

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


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The empty div a figure is drawn into, at the figure's height."""
    height = fig.layout.height or 450
    return (f"<div id='{html.escape(div_id)}' class='plotly-graph-div' "
            f"style='height:{int(height)}px; width:100%'></div>")


def render(title: str, css: str, body: list[str], figures: dict[str, go.Figure]) -> str:
    """The whole page: ``body`` (HTML strings, holding a :func:`figure_div` for each key of
    ``figures``), then plotly.js and the figures, packed, and the script that draws them."""
    packed = ""
    if figures:
        data = {k: {**f.to_plotly_json(), "config": CONFIG} for k, f in figures.items()}
        packed = (f"<script type='application/gzip' id='packed-plotly-js'>{_plotly_js()}"
                  "</script>\n<script type='application/gzip' id='packed-figures'>"
                  f"{_pack(to_json_plotly(data))}</script>\n<script>{_UNPACK}</script>\n")
    state = LOADING if figures else DRAWN
    return ("<!DOCTYPE html>\n"
            f"<html lang='en' data-plots='{state}'>\n<head>\n<meta charset='utf-8'>\n"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n" + packed + "</body>\n</html>\n")


def _pack(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9,
                                          mtime=0)).decode("ascii")


@cache
def _plotly_js() -> str:
    """plotly.js as shipped with the plotly package, packed (once per process)."""
    from plotly.offline import get_plotlyjs

    return _pack(get_plotlyjs())
