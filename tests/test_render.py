"""The render kit both pages are drawn with (replay/render/): a value as a table shows it,
Seoul time on axes and in tables, a long line thinned and held to the end of the data, and
the self-contained page with its packed figures."""

from __future__ import annotations

import base64
import gzip
import json
import re
from html import unescape

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from replay.comparison_page import figures_table
from replay.render.cells import cell, currency_of, with_unit, words
from replay.render.clock import GAP_NS, clock, duration, time_gaps, wall_ms
from replay.render.page import DRAWN, LOADING, Page, Plot, html_table
from replay.render.thinning import held_line, thin

T0 = 1704153600 * 10**9  # 2024-01-02 09:00 KST


@pytest.mark.parametrize(("value", "unit", "text"), [
    (1234567, "", "1,234,567"), (np.int64(-42), "", "-42"),
    (24_701_910_400.0, "", "24,701,910,400"), (1234.5, "", "1,234"), (7.0, "", "7"),
    (523.75, "", "523.8"), (0.012345, "", "0.01235"),
    (0.2653, "%", "26.53%"), (1, "%", "100.00%"),
    (float("inf"), "", "∞"), (float("-inf"), "%", "-∞"),
    (None, "", "–"), (float("nan"), "%", "–"), (np.float64("nan"), "", "–"), (pd.NA, "", "–"),
    (True, "", "yes"), (False, "%", "no"),
    (-1, "generation", "none"), (np.int64(2), "generation", "2"),
    ({"cash": 3, "cfd": 1_200}, "", "cash 3, cfd 1,200"), ({}, "", "0"),
    ([1, "가"], "", '[1, "가"]'), ("krx-credit", "", "krx-credit"),
])
def test_a_value_reads_the_same_way_on_every_page(value, unit, text):
    assert cell(value, unit) == text


def test_a_figure_is_named_with_its_unit_and_won_is_the_runs_currency():
    assert currency_of("krx") == "won" and currency_of("generic") == "quote currency"
    assert with_unit("value force-sold", "won", currency_of("generic")) == (
        "value force-sold (quote currency)")
    assert with_unit("max drawdown", "%", "won") == "max drawdown (%)"
    assert with_unit("deepest cascade generation", "generation", "won") == (
        "deepest cascade generation")
    assert with_unit("accounts called", "", "won") == "accounts called"
    assert words("accounts_wiped_out") == "accounts wiped out"


def test_the_comparison_table_formats_its_cells_as_the_report_does():
    # the comparison page had a formatter of its own: 523.75 read 524 there and 523.8 in a
    # report, an infinite figure "inf%" there and "∞" in a report
    table = pd.DataFrame({"label": ["a", "b"], "broker": ["cfd", "cfd"], "overrides": ["", ""],
                          "forced_value": [523.75, 1234.5],
                          "amplification": [float("inf"), 0.004232],
                          "vi_count": pd.array([pd.NA, 2], dtype="Int64"),
                          "run_dir": ["x", "y"]})
    html = figures_table(table, "quote currency")
    cells = [unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", html)]
    assert cells == ["rules", "cfd", "cfd",
                     "value force-sold (quote currency)", cell(523.75), cell(1234.5),
                     "amplification (force-sold / the tape's sell volume) (%)", "∞", "0.42%",
                     "volatility interruptions (VI)", "–", "2"]
    assert cells[4] == "523.8"


def test_times_read_on_the_seoul_clock_and_a_night_is_cut_out():
    assert clock(T0) == "2024-01-02 09:00:00.000"
    assert clock(T0 + 1_500_000) == "2024-01-02 09:00:00.001"
    assert clock(-1) == clock(None) == clock(float("nan")) == "–"
    assert wall_ms(np.array([T0]))[0] == pd.Timestamp("2024-01-02 09:00").value / 1e6
    assert [duration(s) for s in (1, 90, 120, 7200, 86400)] == [
        "1 s", "90 s", "2 min", "2 h", "1 day"]
    day2 = T0 + 86_400 * 10**9
    hourly = T0 + np.arange(7) * 3600 * 10**9  # 09:00 to 15:00, a stamp every hour
    gaps = time_gaps([hourly, np.array([day2, -1])])
    # the night from 15:00 to 09:00 is cut, with a margin of at most ten minutes each side
    assert gaps == [{"bounds": ["2024-01-02 15:10:00.000000", "2024-01-03 08:50:00.000000"]}]
    assert time_gaps([np.array([T0, T0 + GAP_NS])]) == []  # two hours is not a gap
    assert time_gaps([np.array([T0])]) == []


def test_a_line_is_sorted_thinned_and_held_to_the_end_of_the_data():
    rng = np.random.default_rng(3)
    ts = T0 + np.cumsum(rng.integers(1, 800, 50_000)) * 10**6  # six hours or so
    price = 70_000 + rng.normal(size=len(ts)).cumsum()
    price[31_337] = 1.0  # a one-print low
    order = rng.permutation(len(ts))
    end = int(ts[-1]) + 3600 * 10**9
    x, y, note = held_line(ts[order], price[order], 2_000, end)
    assert len(x) <= 2_001 and 1.0 in y and y[-1] == y[-2] and np.all(np.diff(x) >= 0)
    assert x[-1] == wall_ms(np.array([end]))[0]
    assert note.startswith("50,000 → ")
    keep, _ = thin(ts, price, 2_000)
    assert (y[:-1] == price[keep]).all()
    # a short line is drawn whole and not held past its own end when the data ends before
    x, y, note = held_line(ts[:3], price[:3], 2_000, int(ts[0]))
    assert note is None and list(y) == list(price[:3]) and len(x) == 3


def test_html_tables_right_align_numbers_and_escape_text():
    html = html_table(("", "<b>"), [("rows", "1,234"), ("fall", "-7.41%"), ("none", "–"),
                                    ("name", "a<b")])
    assert "<th></th><th>&lt;b&gt;</th>" in html
    assert "<td class='num'>1,234</td>" in html and "<td class='num'>-7.41%</td>" in html
    assert "<td>–</td>" in html and "<td>a&lt;b</td>" in html


def _payload(page: str) -> dict:
    packed = re.search(r"id='packed-figures'>(.*?)</script>", page, re.S).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def test_a_page_packs_plotly_once_and_draws_each_figure_into_its_div():
    empty = Page("no figures", "p { color: red; }")
    empty.add("<p>nothing drawn</p>")
    text = empty.html()
    assert f"data-plots='{DRAWN}'" in text and "<script" not in text
    assert text.index("td.num") < text.index("p { color: red; }")  # the page's rules last

    page = Page("two <figures>")
    bars = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"height": 300})
    page.plot(Plot(bars, "Bars & <lines>."), "chart-bars")
    page.plot(Plot(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "A line."), "chart-line")
    with pytest.raises(ValueError, match="chart-line"):
        page.plot(Plot(bars, "again"), "chart-line")
    text = page.html()
    assert page.plots == 2 and f"data-plots='{LOADING}'" in text
    assert "<title>two &lt;figures&gt;</title>" in text
    assert text.count("id='packed-plotly-js'") == 1
    assert ("<figure><div id='chart-bars' class='plotly-graph-div' style='height:300px; "
            "width:100%'></div><figcaption>Bars &amp; &lt;lines&gt;.</figcaption></figure>"
            ) in text
    figures = _payload(text)
    assert list(figures) == ["chart-bars", "chart-line"]
    assert figures["chart-bars"]["data"][0]["y"] == [1, 2]
    assert figures["chart-line"]["config"] == {"displaylogo": False, "responsive": True}
    assert Page("two <figures>").html() != text and page.html() == text  # same bytes again
