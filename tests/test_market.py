"""A market day from daily bars (replay.market, docs/synthetic-tapes.md: a market day): the
names of the shipped 2024-08-05 cross-section on one tape, each replaying at the KRX venue
to its own bar, moving together, with their events by turnover; names the bars cannot
anchor left out and counted."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.engine import Replay
from replay.loaders.daily_bars import read_bars
from replay.market import (
    MAX_RATE,
    MIN_RATE,
    market_paths,
    market_rates,
    plan_market,
    write_market_tape,
)
from replay.tape import TRADE, Tape

ALL = "tests/data/daily-2024-08-05-all-krx-pykrx.csv"
DAY = date(2024, 8, 5)


@pytest.fixture(scope="module")
def bars():
    return read_bars(ALL)


@pytest.fixture(scope="module")
def top20(bars, tmp_path_factory):
    mplan = plan_market(bars, DAY, top=20, rate=20.0, source=ALL)
    path = write_market_tape(tmp_path_factory.mktemp("market") / "top20.parquet", mplan,
                             seed=4)
    tape = Tape(path)
    result = Replay(tape.instruments, venue="krx", seed=tape.session_seed).run(
        tape.chunks())
    return mplan, tape, result


def test_the_top_names_by_turnover_replay_to_their_bars(bars, top20):
    mplan, tape, result = top20
    on = bars[bars.date.dt.date == DAY].set_index("code")
    turnover = (on.close * on.volume).sort_values(ascending=False)
    assert [n.code for n in mplan.names] == list(turnover.index[:20])
    tr = result.trades
    for k, name in enumerate(mplan.names):
        bar = name.days[0]
        p = tr[tr.instrument == k + 1].sort_values("ts", kind="stable")
        got = (int(p.price.iloc[0]), int(p.price.max()), int(p.price.min()),
               int(p.price.iloc[-1]))
        assert got == (bar.open, bar.high, bar.low, bar.close), name.code
        assert abs(p["size"].sum() / bar.volume - 1) <= 0.10, name.code
    # the venue suppressed nothing of the tape: every VI it held, the tape held too
    assert result.counters.get("history_executions_in_auction", 0) == 0
    ev = pd.DataFrame(result.venue_events)
    assert (ev.kind == "vi_static").sum() > 5  # a fall of 10% from the open is common
    assert set(ev.kind) <= {"vi_static", "uncross_vi", "uncross_open", "uncross_close"}


def test_events_follow_turnover(top20):
    mplan, tape, _ = top20
    ev = tape.read()
    rows = np.bincount(ev.instrument.astype(np.int64), minlength=21)[1:]
    rates = np.array(mplan.rates)
    # more decisions a second, more rows: the busiest name has several times the rows of
    # the quietest
    assert rates.argmax() == rows.argmax() and rates.argmin() == rows.argmin()
    assert rows.max() > 3 * rows.min()


def test_rates_split_the_market_by_turnover_within_bounds():
    r = market_rates(np.array([0.0, 1.0, 3.0, 996.0]), 100.0)
    assert r[0] == MIN_RATE and r[3] == MAX_RATE
    assert r[2] == pytest.approx(0.3) and r[1] == pytest.approx(0.1)


def test_a_market_fall_happens_at_the_same_time_across_names(bars):
    # the lows of the names that fell: with a strong market loading they cluster around
    # the market factor's low; with none they are spread over the session
    mplan = plan_market(bars, DAY, top=200, source=ALL)

    def spread(beta, gamma, seed):
        # the median distance in minutes of the names' lows from their median time
        paths = market_paths(mplan, seed=seed, beta=beta, gamma=gamma)
        lows = np.array([paths(k, 0).low_t for k, n in enumerate(mplan.names)
                         if n.days[0].traded and n.days[0].high != n.days[0].low]) / 60e9
        return np.median(np.abs(lows - np.median(lows)))

    for seed in (7, 8):
        alone = spread(0.0, 0.0, seed)
        assert alone > 60  # independent names: lows all over the session
        assert spread(0.6, 0.4, seed) < 0.5 * alone  # the defaults
    with pytest.raises(ValueError, match="beta"):
        market_paths(mplan, seed=1, beta=0.9, gamma=0.9)


def test_names_the_bars_cannot_anchor_are_left_out_and_counted(bars, tmp_path):
    # 000300 did not trade on 08-02 nor 08-05 (no base price); 076610's low lies below the
    # limits of its previous close (an adjusted series)
    mplan = plan_market(bars, DAY, codes=["000300", "005930", "076610"], source=ALL)
    assert [n.code for n in mplan.names] == ["005930"]
    reasons = dict(mplan.dropped)
    assert set(reasons) == {"000300", "076610"}
    assert "no base price" in reasons["000300"]
    assert "field low: 875 lies outside the daily limits" in reasons["076610"]
    path = write_market_tape(tmp_path / "m.parquet", mplan, seed=1)
    meta = json.loads(Tape(path).market)
    assert meta["names"] == 1 and meta["asked"] == 3
    assert {d["code"] for d in meta["dropped"]} == {"000300", "076610"}
    with pytest.raises(ValueError, match="none of the 1 selected names"):
        plan_market(bars, DAY, codes=["000300"], source=ALL)


def test_every_name_of_the_day_is_planned_or_counted(bars):
    mplan = plan_market(bars, DAY, source=ALL)
    codes = set(bars.code)
    assert len(mplan.names) + len(mplan.dropped) == len(codes)
    assert len(mplan.names) > 2_400
    traded = bars[(bars.date.dt.date == DAY) & (bars.volume > 0)].code
    planned = {n.code for n in mplan.names}
    # a name that traded that day is on the tape unless its series is inconsistent
    inconsistent = {c for c, r in mplan.dropped if "outside the daily limits" in r
                    or "field change" in r}
    assert set(traded) - planned <= inconsistent


def test_same_bars_and_seed_give_identical_bytes(bars, tmp_path):
    mplan = plan_market(bars, DAY, top=5, rate=5.0, source=ALL)
    a = write_market_tape(tmp_path / "a.parquet", mplan, seed=3)
    b = write_market_tape(tmp_path / "b.parquet", mplan, seed=3)
    c = write_market_tape(tmp_path / "c.parquet", mplan, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_the_cli_builds_a_market_and_explains_bad_selections(tmp_path):
    out = tmp_path / "m.parquet"
    r = CliRunner().invoke(app, ["market", "build", "--bars", ALL, "--date", "2024-08-05",
                                 "--top", "3", "--rate", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "3 name(s) x 1 day(s)" in r.output
    tape = Tape(out)
    assert len(tape.instruments) == 3 and (tape.read().action == TRADE).any()
    for args, why in ((["--top", "3", "--codes", "005930"], "codes or top"),
                      (["--date", "2024-08-09"], "no bars on 2024-08-09"),
                      (["--date", "08/05/2024"], "not a date"),
                      (["--codes", "999999"], "code 999999 is not in the file"),
                      (["--top", "2", "--days", "3"], "3 day(s) from 2024-08-05")):
        argv = ["market", "build", "--bars", ALL, "--date", "2024-08-05", "-o",
                str(tmp_path / "x.parquet")]
        if "--date" in args:
            i = argv.index("--date")
            del argv[i:i + 2]
        r = CliRunner().invoke(app, argv + args)
        assert r.exit_code == 2 and why in r.output, (args, r.output)
        assert not (tmp_path / "x.parquet").exists()


def test_a_listing_gives_the_market_tape_its_markets_and_index_weights(tmp_path):
    # a FinanceDataReader listing (the layout of docs/data-formats.md: listings) written
    # here: Samsung on KOSPI, Alteogen on KOSDAQ, with their shares outstanding
    listing = tmp_path / "krx.csv"
    listing.write_text(
        ",Code,ISU_CD,Name,Market,Dept,Close,ChangeCode,Changes,ChagesRatio,Open,High,Low,"
        "Volume,Amount,Marcap,Stocks,MarketId\n"
        "0,005930,KR7005930003,삼성전자,KOSPI,,71400,2,-8200,-10.3,1,1,1,1,1,"
        "426242474070000,5969782550,STK\n"
        "1,196170,KR7196170005,알테오젠,KOSDAQ GLOBAL,,300000,2,-100,-0.1,1,1,1,1,1,"
        "15951627600000,53172092,KSQ\n", encoding="utf-8")
    out = tmp_path / "m.parquet"
    base = ["market", "build", "--bars", ALL, "--date", "2024-08-05", "--rate", "2",
            "--listing", str(listing)]
    r = CliRunner().invoke(app, base + ["--codes", "005930,196170", "-o", str(out)])
    assert r.exit_code == 0, r.output
    got = {i.symbol: (i.market, i.shares_outstanding) for i in Tape(out).instruments}
    assert got == {"005930": ("KOSPI", 5969782550), "196170": ("KOSDAQ", 53172092)}
    r = CliRunner().invoke(app, base + ["--codes", "005930,000660", "-o",
                                        str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "000660" in r.output, r.output
    r = CliRunner().invoke(app, base + ["--codes", "005930,000660", "--allow-missing",
                                        "-o", str(tmp_path / "y.parquet")])
    assert r.exit_code == 0 and "not in the listing" in r.output, r.output


def test_a_made_up_market_moves_together_and_builds_like_a_real_one(tmp_path):
    from replay.market import synthetic_market_bars

    bars = synthetic_market_bars(40, 3, seed=2, start=date(2024, 3, 4), shocks={1: -0.08})
    again = synthetic_market_bars(40, 3, seed=2, start=date(2024, 3, 4), shocks={1: -0.08})
    pd.testing.assert_frame_equal(bars, again)
    assert sorted(set(bars.date.dt.date)) == [date(2024, 3, 4), date(2024, 3, 5),
                                             date(2024, 3, 6)]
    # the shocked day falls across the names; the other days are about flat
    by_day = bars.groupby(bars.date.dt.date).change.median()
    assert by_day.iloc[1] < -0.05 and abs(by_day.iloc[0]) < 0.03
    mplan = plan_market(bars, date(2024, 3, 4), days=3, rate=20.0)
    assert len(mplan.names) == 40 and not mplan.dropped
    assert all(n.shares > 0 for n in mplan.names)
    out = tmp_path / "made-up.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--profile", "krx-market", "--names", "6",
                                 "--days", "2", "--rate", "6", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "krx-market: 6 name(s) x 2 day(s)" in r.output
    assert len(Tape(out).instruments) == 6
    for args, why in ((["--profile", "krx-market"], "needs --names"),
                      (["--profile", "krx-largecap", "--names", "3"], "krx-market"),
                      (["--profile", "krx-market", "--names", "0"], "between 1 and")):
        r = CliRunner().invoke(app, ["data", "synth", *args, "-o",
                                     str(tmp_path / "x.parquet")])
        assert r.exit_code == 2 and why in r.output, (args, r.output)


def test_the_tape_s_index_closes_at_the_cap_weighted_return_of_its_names(bars, tmp_path):
    """KOSPI computed by the venue from the 50 largest names of 2024-08-05: its close return
    is the cap-weighted return of their replayed closes, and its breaker fires once the
    index has been 8% down for a minute. The shipped bars have no shares outstanding (and
    no public listing of 2024-08 is shipped), so the weights here are made up: each name's
    shares = its turnover / close x 40, a test of the computation, not of the real KOSPI."""
    from replay.loaders.listing import read_listing

    on = bars[bars.date.dt.date == DAY].set_index("code")
    top = (on.close * on.volume).sort_values(ascending=False).index[:50]
    shares = (on.volume[top] * 40).astype(int)
    listing = tmp_path / "listing.csv"
    listing.write_text("Code,Market,Stocks\n" + "".join(
        f"{c},KOSPI,{int(s)}\n" for c, s in shares.items()), encoding="utf-8")
    mplan = plan_market(bars, DAY, codes=list(top), rate=50.0, source=ALL,
                        listing=read_listing(listing))
    tape = Tape(write_market_tape(tmp_path / "m.parquet", mplan, seed=1))
    result = Replay(tape.instruments, venue="krx", seed=1,
                    index_prior_close={"KOSPI": 2676.19}).run(tape.chunks())
    kospi = result.indices["KOSPI"]
    closes = result.sessions.set_index("instrument").close
    cap0 = sum(i.shares_outstanding * i.prev_close_units for i in tape.instruments)
    cap1 = sum(i.shares_outstanding * int(closes[i.instrument_id]) for i in tape.instruments)
    assert abs(kospi["close_return"] - (cap1 / cap0 - 1)) < 0.002  # 0.2 points
    assert kospi["names"] == 50
    # the breaker: never without the index 8% below its prior close, and then at a level
    # at or below -8%; this day's names go far enough below it for long enough
    fired = [e for e in kospi["events"] if e["kind"].startswith("circuit_breaker")]
    if kospi["low_return"] > -0.08:
        assert not fired
    assert fired and all(e["return"] <= -0.08 for e in fired)
    print(f"KOSPI of 50 names: close {kospi['close_return']:.2%}, low "
          f"{kospi['low_return']:.2%}, breakers {[e['time_seoul'] for e in fired]}")
