"""The report of a market run (replay/report_market.py, docs/reports.md: a market run): five
large caps of 2024-08-02..08-06 on one anchored tape, credit and 미수 concentrated in the
semiconductor names, KOSPI computed from the five (shares made up: no listing of 2024-08
ships) with its breaker on 08-05. The figures must carry the run's own figures: the halt
bands at the breaker's times, the index closing where the venue closed it, the forced
sales per name adding up to the broker's totals."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay import report_market
from replay.cli import app
from replay.loaders.daily_bars import read_bars
from replay.loaders.listing import read_listing
from replay.market import plan_market, write_market_tape
from replay.render.clock import stamp
from replay.report import build_sections, read_run, render_page, write_report
from replay.report_market import (
    REPORTED,
    constituents,
    forced_by_instrument,
    index_members,
    index_path,
    name_rows,
)

BARS = Path(__file__).parent / "data" / "daily-2024-08-largecaps-pykrx.csv"
START = date(2024, 8, 2)
CODES = ["005930", "000660", "042700", "373220", "005380"]
SEMIS = CODES[:3]
KOSPI_CLOSE = 2777.68  # 08-01's close, 08-02's prior (tests/data/kospi-index-daily-ohlc.csv)
SPEC = """bars = "{bars}"
loan_term_days = 4
margin_rate = [0.4, 0.45]

[market]
as_of = "2024-08-02"
codes = {codes}
accounts = 2000
kospi_credit_balance_krw = 1e11
default_market = "KOSPI"
misu_share = 0.1
misu_loan_term_days = 2
portfolio_share = 0.2
concentrate = {{ codes = {semis}, share = 0.7 }}
"""


def market_tape(tmp: Path, codes: list[str], days: int) -> Path:
    bars = read_bars(BARS)
    on = bars[bars.date.dt.date == START].set_index("code")
    listing = tmp / "listing.csv"
    listing.write_text("Code,Market,Stocks\n" + "".join(
        f"{c},KOSPI,{int(on.volume[c] * 40)}\n" for c in codes), encoding="utf-8")
    mplan = plan_market(bars, START, days=days, codes=codes, rate=8.0, source=str(BARS),
                        listing=read_listing(listing))
    return write_market_tape(tmp / "market.parquet", mplan, 2)


@pytest.fixture(scope="module")
def market_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("market-report")
    tape = market_tape(tmp, CODES, days=3)
    spec = tmp / "population.toml"
    spec.write_text(SPEC.format(bars=BARS.resolve().as_posix(), codes=json.dumps(CODES),
                                semis=json.dumps(SEMIS)), encoding="utf-8")
    out = tmp / "run"
    r = CliRunner().invoke(app, [
        "replay", str(tape), "--broker", "krx-credit", "--broker", "krx-misu",
        "--population", str(spec), "--index-close", f"KOSPI={KOSPI_CLOSE}", "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def plots(section):
    return [p for p in section.parts if not isinstance(p, str)]


def test_the_console_says_how_many_names_and_the_index(market_run):
    out, console = market_run
    assert "market: 5 names (KOSPI 5)" in console
    kospi = summary(out)["indices"]["KOSPI"]
    assert f"KOSPI close {kospi['close']:,.2f} ({kospi['close_return']:+.2%})" in console


def test_summary_records_the_names_and_the_population_split(market_run):
    s = summary(market_run[0])
    assert s["market"]["names"] == 5 and s["market"]["by_market"] == {"KOSPI": 5}
    rows = s["market"]["constituents"]["rows"]
    assert sorted(r[1] for r in rows) == sorted(CODES)
    (split,) = s["population_split"].values()
    kospi = split["markets"]["KOSPI"]
    assert kospi["credit_krw"] == 100_000_000_000
    assert sorted(kospi["concentrate_codes"]) == sorted(SEMIS)
    names = pd.DataFrame(split["names"]["rows"], columns=split["names"]["columns"])
    assert names.credit_krw.sum() == kospi["credit_krw"]  # every won laid on a name
    held = names.set_index("code").credit_krw.loc[SEMIS].sum()
    assert held == kospi["concentrate_krw"] == pytest.approx(0.7 * 1e11, abs=1)


def test_the_index_figure_shades_each_breaker_from_its_trigger_to_its_release(market_run):
    out, _ = market_run
    s = summary(out)
    breakers = [e for e in s["indices"]["KOSPI"]["events"]
                if e["kind"].startswith("circuit_breaker")]
    assert breakers, "the five names' fall on 08-05 breaks KOSPI's -8%"
    run = read_run(out)
    (section,) = [x for x in build_sections(run) if x.id == "indices"]
    (plot,) = plots(section)
    bands = [(sh.x0, sh.x1) for sh in plot.figure.layout.shapes if sh.type == "rect"]
    assert bands == [(stamp(e["ts_ns"]), stamp(e["release_ts_ns"])) for e in breakers]
    labels = [a.text for a in plot.figure.layout.annotations]
    for e in breakers:
        assert any(e["time_seoul"] in t and f"{e['level']:,.2f}" in t for t in labels)
    lines = sorted(sh.y0 for sh in plot.figure.layout.shapes if sh.type == "line")
    assert lines == [-20.0, -15.0, -8.0]
    sidecars = [e for e in s["indices"]["KOSPI200F"]["events"] if e["kind"].startswith("sidecar")]
    marks = [t for t in plot.figure.data if t.name.startswith("sidecar")]
    assert len(marks) == 1 and list(marks[0].y) == pytest.approx(
        [100 * e["return"] for e in sidecars])


def test_the_index_recomputed_from_the_prints_closes_where_the_venue_closed_it(market_run):
    out, _ = market_run
    run = read_run(out)
    kospi = summary(out)["indices"]["KOSPI"]
    names = constituents(run)
    bases = report_market._bases(run)
    path = index_path(run, names, index_members(names, "KOSPI", kospi), bases)
    closes = path.groupby("day").ret.last().to_numpy()
    assert closes == pytest.approx([d["close_return"] for d in kospi["days"]], abs=1e-6)
    # the venue's low counts the day's start, at the prior close, too
    lows = np.minimum(path.groupby("day").ret.min().to_numpy(), 0.0)
    assert lows == pytest.approx([d["low_return"] for d in kospi["days"]], abs=1e-6)


def test_forced_sales_by_name_add_up_to_the_runs_totals(market_run, monkeypatch):
    out, _ = market_run
    broker = summary(out)["broker"]
    run = read_run(out)
    per = forced_by_instrument(run)
    assert (per.filled > 0).sum() > 1, "forced sales in more than one name"
    monkeypatch.setattr(report_market, "NAME_BARS", 2)  # the rest in one bar
    rows = name_rows(run, per)
    assert rows.label.iloc[-1] == f"others ({len(per) - 2} names)"
    assert rows.filled.sum() == broker["forced_volume"]
    assert rows.value.sum() == pytest.approx(broker["forced_value"])
    (section,) = [x for x in build_sections(run) if x.id == "forced-names"]
    by_name, by_generation = plots(section)
    value, shares = by_name.figure.data
    assert list(value.x) == list(rows.label)
    assert sum(value.y) == pytest.approx(broker["forced_value"])
    assert sum(shares.y) == broker["forced_volume"]
    stacked = np.sum([list(t.y) for t in by_generation.figure.data], axis=0)
    assert stacked.tolist() == rows.filled.astype(int).tolist()


def test_the_paths_draw_the_largest_and_the_most_force_sold(market_run):
    run = read_run(market_run[0])
    (section,) = [x for x in build_sections(run) if x.id == "names"]
    (plot,) = plots(section)
    drawn = [t.name.split(" ")[0] for t in plot.figure.data]
    names = constituents(run).assign(cap=lambda f: f.shares * f.prior_close)
    largest = names.sort_values("cap", ascending=False).symbol.head(5).tolist()
    assert drawn[:5] == largest
    # each line in % of its name's prior close of the day: Samsung's last point is its
    # close of 08-06 against its close of 08-05
    bars = read_bars(BARS).set_index(["code", "date"]).close
    samsung = next(t for t in plot.figure.data if t.name.startswith("005930"))
    want = bars["005930", pd.Timestamp("2024-08-06")] / bars["005930", pd.Timestamp(
        "2024-08-05")] - 1
    assert samsung.y[-1] == pytest.approx(100 * want, abs=0.01)


def test_the_reported_vs_simulated_table_comes_first(market_run, tmp_path):
    out, _ = market_run
    csv = out / REPORTED
    csv.write_text("fact,reported,simulated,gap,unit,note\n"
                   "KOSPI close,-8.77,-9.96,-1.19,%,of five names\n"
                   "circuit breaker,14:14:30,12:17:29,,KST,\n", encoding="utf-8")
    try:
        run = read_run(out)
        sections = build_sections(run)
        assert sections[0].id == "reported" and sections[0].title == "Reported vs simulated"
        page = render_page(run, sections)
        first = page[page.index("<table"):page.index("</table>")]
        assert "KOSPI close" in first and "14:14:30" in first and "of five names" in first
        csv.write_text("fact,reported,simulated\nx,1,2\n", encoding="utf-8")
        with pytest.raises(ValueError, match=f"{REPORTED}: no column 'gap'"):
            write_report(out)
    finally:
        csv.unlink()


def test_a_single_name_report_is_unchanged(tmp_path, monkeypatch):
    tape = market_tape(tmp_path, CODES[:1], days=1)
    out = tmp_path / "one"
    r = CliRunner().invoke(app, ["replay", str(tape), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "market:" not in r.output and "market" not in summary(out)
    run = read_run(out)
    page = render_page(run, build_sections(run))
    monkeypatch.setattr(report_market, "market_sections", lambda run: [])
    monkeypatch.setattr(report_market, "first_sections", lambda run: [])
    assert render_page(run, build_sections(run)) == page
    assert [s.id for s in build_sections(run)][:2] == ["price", "venue"]
