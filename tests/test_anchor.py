"""Tapes anchored to daily bars (docs/synthetic-tapes.md: anchored tapes): each name-day
opens and closes at the recorded prices through the auctions, prints its high and low and
nothing outside them, trades its volume, and replays so at the KRX venue."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.anchor import plan_from_bars, synthesize_from_bars, write_anchored_tape
from replay.anchor_trades import aggressors, write_trades_anchored_tape
from replay.cli import app
from replay.engine import Replay
from replay.fit_profile import fit_book, fit_profile
from replay.inject import read_injected
from replay.loaders import load
from replay.loaders.daily_bars import off_grid, read_bars
from replay.synth import LARGECAP, SMALLCAP, synthesize
from replay.tape import (
    ASK,
    BID,
    DELETE,
    F_AUCTION,
    FILL,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
    Tape,
)
from venues.codes import SRC_AUCTION
from venues.krx.session import SEOUL, schedule, seoul_date
from venues.krx.ticks import price_grid

BARS = "tests/data/daily-2024-08-largecaps-pykrx.csv"
#: back-adjusted names whose 2024-08 prices are off the KRX tick grid (tests/data README)
ADJUSTED = {"068270", "207940", "006400", "012450", "086520"}
THIN = 0.2  # decisions a second: about 5,000 rows a name-day


@pytest.fixture(scope="module")
def bars():
    return read_bars(BARS)


def ohlcv(ts, price, size):
    """Per Seoul day: (open, high, low, close, volume) of the prints."""
    days = np.array([seoul_date(int(t)) for t in ts])
    out = {}
    for d in sorted(set(days)):
        p, s = price[days == d], size[days == d]
        out[d] = (int(p[0]), int(p.max()), int(p.min()), int(p[-1]), int(s.sum()))
    return out


def tape_ohlcv(events, inst):
    m = (events.instrument == inst) & (events.action == TRADE)
    return ohlcv(events.ts[m], events.price[m], events.size[m])


def test_every_large_cap_and_day_matches_its_bars(bars):
    plan = plan_from_bars(bars, source=BARS)
    assert len(plan.names) == 33 and len(plan.days) == 10
    # the adjusted names' prices were rounded to the grid, counted, and only theirs
    assert plan.rounded > 0 and {r[0] for r in plan.rounded_rows} <= ADJUSTED
    flagged = bars[off_grid(bars)]
    assert {(r[0], r[1]) for r in plan.rounded_rows} == set(zip(
        flagged.code, flagged.date.dt.date, strict=True))
    # the kernels are compiled (or loaded from the cache) before the clock starts
    small = plan_from_bars(bars, source=BARS, codes=["005930"], days=1)
    list(synthesize_from_bars(small, seed=5, event_rate=THIN))
    t0 = time.perf_counter()
    rows = 0
    worst = 0.0
    for i, (events, table) in enumerate(synthesize_from_bars(plan, seed=5, event_rate=THIN)):
        rows += len(events)
        assert np.all(np.diff(events.ts) >= 0)
        for k, name in enumerate(plan.names):
            bar = name.days[i]
            assert table[k + 1].symbol == name.code and table[k + 1].prev_close_units == \
                bar.base
            (o, h, lo, c, v), = tape_ohlcv(events, k + 1).values()
            assert (o, h, lo, c) == (bar.open, bar.high, bar.low, bar.close), (name.code,
                                                                                bar.day)
            worst = max(worst, abs(v / bar.volume - 1))
            # every fill too lies in the day's range, and the open and close are auctions
            f = (events.instrument == k + 1) & (events.action == FILL)
            assert bar.low <= events.price[f].min() and events.price[f].max() <= bar.high
            m = (events.instrument == k + 1) & (events.action == TRADE)
            assert events.flags[m][0] & F_AUCTION and events.flags[m][-1] & F_AUCTION
    assert worst <= 0.10
    elapsed = time.perf_counter() - t0
    print(f"33 names x 10 days: {rows:,} rows in {elapsed:.1f}s, worst volume {worst:.1%}")
    assert rows < 2_000_000


def test_the_first_base_comes_from_change_and_later_ones_are_the_previous_close(bars):
    plan = plan_from_bars(bars, source=BARS, codes=["005930"], days=3)
    d = plan.names[0].days
    # 2024-07-29: close 81,200 at +0.3708% -> 80,900 on the 100-won grid
    assert d[0].base == 80_900
    assert d[1].base == d[0].close and d[2].base == d[1].close


@pytest.fixture(scope="module")
def two_names(bars, tmp_path_factory):
    plan = plan_from_bars(bars, source=BARS, codes=["005930", "000660"])
    path = tmp_path_factory.mktemp("anchor") / "two.parquet"
    write_anchored_tape(path, plan, seed=2, event_rate=THIN)
    return plan, path


@pytest.fixture(scope="module")
def all_names(bars, tmp_path_factory):
    plan = plan_from_bars(bars, source=BARS)
    path = tmp_path_factory.mktemp("anchor") / "all.parquet"
    write_anchored_tape(path, plan, seed=5, event_rate=THIN)
    tape = Tape(path)
    return plan, Replay(tape.instruments, venue="krx", seed=tape.session_seed).run(
        tape.chunks())


def test_the_krx_venue_replays_every_large_cap_to_its_bars(all_names):
    plan, result = all_names
    tr = result.trades
    assert (tr.source == SRC_AUCTION).any()  # the venue uncrossed the auctions itself
    for k, name in enumerate(plan.names):
        got = tr[tr.instrument == k + 1]
        replayed = ohlcv(got.ts.to_numpy(), got.price.to_numpy(), got["size"].to_numpy())
        for bar in name.days:
            o, h, lo, c, v = replayed[bar.day]
            assert (o, h, lo, c) == (bar.open, bar.high, bar.low, bar.close), (name.code,
                                                                                bar.day)
            assert abs(v / bar.volume - 1) <= 0.10
    closes = result.sessions.set_index(["instrument", "day"]).close
    assert all(closes[(k + 1, b.day)] == b.close for k, n in enumerate(plan.names)
               for b in n.days)


def test_the_tape_holds_the_static_vis_the_venue_interrupts_for(all_names):
    """On 2024-08-05 names fell more than 10% from their open: each such day has a static
    VI, at the first tick at or beyond 10% from its reference (the open, then the last VI
    auction's price), and the venue suppresses none of the tape's prints."""
    plan, result = all_names
    assert result.counters.get("history_executions_in_auction", 0) == 0
    ev = pd.DataFrame(result.venue_events)
    vis = ev[ev.kind.str.startswith("vi")]
    assert set(vis.kind) == {"vi_static"}
    uncrossed = ev[ev.kind == "uncross_vi"]
    assert len(uncrossed) == len(vis)
    days = np.array([seoul_date(int(t)) for t in vis.ts])
    for k, name in enumerate(plan.names):
        for bar in name.days:
            mine = vis[(vis.instrument == k + 1) & (days == bar.day)]
            reach = bar.low * 10 <= bar.open * 9 or bar.high * 10 >= bar.open * 11
            if reach:
                assert len(mine), (name.code, bar.day)
            ref = bar.open
            for row in mine.itertuples():
                assert row.reference == ref
                grid = price_grid(ref // 2, ref * 2, on=bar.day)
                down = row.price < ref
                thr = ref * 9 // 10 if down else -((-ref * 11) // 10)
                # the first grid price at or beyond the threshold
                assert row.price == (grid[grid <= thr].max() if down else
                                     grid[grid >= thr].min()), (name.code, row)
                after = uncrossed[(uncrossed.instrument == k + 1)
                                  & (uncrossed.ts == row.release_ts)]
                assert len(after) == 1
                ref = int(after.price.iloc[0])
    print(f"{len(vis)} static VIs over {len(plan.names)} names x {len(plan.days)} days")
    assert len(vis[days == date(2024, 8, 5)]) >= 10


def test_an_open_beyond_the_vi_threshold_extends_the_opening_auction(tmp_path):
    # opens 12% below its base: the venue finds the open at or beyond the static VI
    # threshold at 09:00 and extends the auction; the tape's uncross is at the same moment
    bars = pd.DataFrame({
        "code": ["123450"], "date": pd.to_datetime(["2024-08-05"]), "open": [8_800],
        "high": [9_200], "low": [8_600], "close": [9_000], "volume": [500_000],
        "change": [-0.10], "market": ["KOSPI"]})
    plan = plan_from_bars(bars, source="gap.csv")
    assert plan.names[0].days[0].base == 10_000
    path = write_anchored_tape(tmp_path / "gap.parquet", plan, seed=3, event_rate=1.0)
    tape = Tape(path)
    events = tape.read()
    m = (events.action == TRADE) & ((events.flags & F_AUCTION) > 0)
    opened = int(events.ts[m][0])
    nominal = schedule(date(2024, 8, 5), 3).open_ns
    assert opened >= nominal + 120 * 10**9
    result = Replay(tape.instruments, venue="krx", seed=3).run(tape.chunks())
    ev = pd.DataFrame(result.venue_events)
    assert ev.kind.iloc[0] == "vi_static" and ev.ts.iloc[0] == nominal
    assert int(ev[ev.kind == "uncross_open"].ts.iloc[0]) == opened
    got = ohlcv(result.trades.ts.to_numpy(), result.trades.price.to_numpy(),
                result.trades["size"].to_numpy())
    assert got[date(2024, 8, 5)][:4] == (8_800, 9_200, 8_600, 9_000)


def test_an_extreme_once_printed_does_not_stop_the_prints(bars):
    # the value was pressed beyond an extreme for the hold's length: once the extreme had
    # printed, the flow went on waiting there (000660 on 2024-08-05: 136 minutes without
    # a print); now the longest pause in continuous trading is a VI auction's
    plan = plan_from_bars(bars, source=BARS, codes=["000660"], start=date(2024, 8, 5),
                          days=1)
    (events, _), = synthesize_from_bars(plan, seed=1, event_rate=5.0)
    sched = schedule(date(2024, 8, 5), 1)
    m = (events.action == TRADE) & (events.ts < sched.continuous_end_ns)
    gaps = np.diff(events.ts[m])
    assert gaps.max() < 3 * 60 * 10**9


def test_same_bars_and_seed_give_identical_bytes(bars, tmp_path):
    plan = plan_from_bars(bars, source=BARS, codes=["035720", "005380"], days=2)
    a = write_anchored_tape(tmp_path / "a.parquet", plan, seed=9, event_rate=THIN)
    b = write_anchored_tape(tmp_path / "b.parquet", plan, seed=9, event_rate=THIN)
    c = write_anchored_tape(tmp_path / "c.parquet", plan, seed=10, event_rate=THIN)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def locked_bars():
    """Two days of a made-up name: the second falls to its lower limit and closes there."""
    return pd.DataFrame({
        "code": ["123450", "123450"], "date": pd.to_datetime(["2024-08-01", "2024-08-02"]),
        "open": [10_000, 9_900], "high": [10_100, 9_950], "low": [9_850, 7_000],
        "close": [10_000, 7_000], "volume": [300_000, 900_000], "change": [0.0, -0.30],
        "market": ["KOSPI", "KOSPI"]})


def test_a_day_that_closed_at_its_lower_limit_is_limit_locked(tmp_path):
    plan = plan_from_bars(locked_bars(), source="locked.csv")
    assert plan.names[0].days[1].base == 10_000
    path = write_anchored_tape(tmp_path / "locked.parquet", plan, seed=1, event_rate=1.0)
    tape = Tape(path)
    events = tape.read()
    got = tape_ohlcv(events, 1)
    assert got[date(2024, 8, 2)][:4] == (9_900, 9_950, 7_000, 7_000)
    # at the close, sellers are queued at the lower limit and no bid is left: the orders
    # the tape deletes after the closing uncross
    day2 = np.array([seoul_date(int(t)) == date(2024, 8, 2) for t in events.ts])
    left = day2 & (events.action == DELETE)
    assert not (left & (events.side == BID)).any()
    queued = events.size[left & (events.side == ASK) & (events.price == 7_000)].sum()
    assert queued > 100_000
    # no print of continuous trading moves more than 2% from the one before, an auction's
    # included (inside the venue's dynamic VI); the day fell through static VIs
    m = day2 & (events.action == TRADE)
    p, auction = events.price[m], (events.flags[m] & F_AUCTION) > 0
    steps = np.abs(np.diff(p))[~auction[1:]]
    assert (steps <= 0.021 * p[:-1][~auction[1:]]).all()
    assert auction.sum() > 2  # the open, the close and at least one VI auction
    result = Replay(tape.instruments, venue="krx", seed=1).run(tape.chunks())
    s2 = result.sessions.iloc[1]
    assert s2.lower_limit == 7_000 and s2.close == 7_000 and s2.closed_at_lower_limit


def test_a_large_sale_in_relative_mode_moves_the_anchored_price_down(two_names, tmp_path):
    plan, path = two_names
    tape = Tape(path)
    day = plan.days[0]
    at = pd.Timestamp(datetime.combine(day, datetime.min.time().replace(hour=11),
                                       tzinfo=SEOUL))
    csv = tmp_path / "sell.csv"
    csv.write_text("ts,instrument,side,type,price,size\n"
                   f"{at.isoformat()},005930,sell,market,,3000000\n")

    def prints(injected):
        r = Replay(tape.instruments, mode="relative", venue="krx",
                   seed=tape.session_seed).run(tape.chunks(), injected)
        t = r.trades[(r.trades.instrument == 1) & (r.trades.ts > at.value)
                     & (r.trades.ts < at.value + 3_600 * 10**9)]
        return t

    base = prints(None)
    hit = prints(read_injected(csv, tape.instruments))
    assert hit.price.iloc[0] < base.price.iloc[0]
    # the prints after it follow it down: the hour's later history prints trade lower
    later_base = base[base.ts > at.value + 60 * 10**9].price.median()
    later_hit = hit[(hit.ts > at.value + 60 * 10**9) & (hit.source != SRC_AUCTION)]
    assert later_hit.price.median() < later_base


def test_bad_selections_and_files_are_errors_that_say_why(bars):
    with pytest.raises(ValueError, match="code 999999 is not in the file"):
        plan_from_bars(bars, source=BARS, codes=["999999"])
    with pytest.raises(ValueError, match="11 day"):
        plan_from_bars(bars, source=BARS, days=11)
    with pytest.raises(ValueError, match="after the file's last day"):
        plan_from_bars(bars, source=BARS, start=date(2024, 9, 1))
    with pytest.raises(ValueError, match="no column high"):
        plan_from_bars(bars.drop(columns=["high"]), source=BARS)
    no_change = bars.assign(change=np.nan)
    with pytest.raises(ValueError, match="005930 2024-07-29, field change"):
        plan_from_bars(no_change, source=BARS, codes=["005930"])
    # a later start takes the previous row's close as the base, change or not
    later = plan_from_bars(no_change, source=BARS, codes=["005930"],
                           start=date(2024, 7, 30))
    assert later.names[0].days[0].base == 81_200
    bad = bars.copy()
    bad.loc[(bad.code == "005930") & (bad.date == "2024-07-30"), "low"] = 81_500
    with pytest.raises(ValueError, match="005930 2024-07-30, field open"):
        plan_from_bars(bad, source=BARS, codes=["005930"])
    wild = bars.copy()
    wild.loc[(wild.code == "005930") & (wild.date == "2024-07-30"), "high"] = 200_000
    with pytest.raises(ValueError, match="field high: 200000 lies outside the daily limits"):
        plan_from_bars(wild, source=BARS, codes=["005930"])


def test_cli_makes_an_anchored_tape_and_reports_clear_errors(tmp_path):
    out = tmp_path / "t.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--anchor", BARS, "--codes",
                                 "005930,068270", "--start", "2024-08-05", "--days", "2",
                                 "--rate", "0.2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 name(s) x 2 day(s)" in r.output and "rounded" in r.output
    assert [i.symbol for i in Tape(out).instruments] == ["005930", "068270"]
    for args, why in ((["--codes", "123456"], "code 123456 is not in the file"),
                      (["--start", "2024-09-02"], "after the file's last day"),
                      (["--days", "20"], "20 day(s) from")):
        r = CliRunner().invoke(app, ["data", "synth", "--anchor", BARS, *args, "-o",
                                     str(tmp_path / "x.parquet")])
        assert r.exit_code == 2 and why in r.output, r.output
    r = CliRunner().invoke(app, ["data", "synth", "-o", str(tmp_path / "y.parquet")])
    assert r.exit_code == 2 and "--profile" in r.output
    closes = tmp_path / "closes.csv"
    closes.write_text("code,date,close,volume\n005930,2024-08-05,71400,100\n")
    r = CliRunner().invoke(app, ["data", "synth", "--anchor", str(closes), "-o",
                                 str(tmp_path / "z.parquet")])
    assert r.exit_code == 2 and "closes.csv" in r.output and "field 'Open'" in r.output, \
        r.output
    assert not (tmp_path / "z.parquet").exists()


def test_a_profile_fitted_from_a_recorded_book_takes_its_spread_and_depth():
    # the small-cap synthetic book: a spread of one tick most of the time, a few hundred
    # shares a level (docs/synthetic-tapes.md: profiles)
    events, table = next(synthesize("krx-smallcap", days=1, seed=3, chunk_events=60_000))
    fit = fit_book([events], table, 1, depth=5)
    assert fit.snapshots > 10_000 and fit.spread_ticks == 1.0
    assert all(50 <= d <= 5_000 for d in fit.depth)
    prof = fit_profile(SMALLCAP, fit)
    assert len(prof.placement_weights) == 5 and max(prof.placement_weights) == 1.0
    # a wider book: every level one tick farther, so the first tick gets no weight
    wide = fit_profile(SMALLCAP, replace(fit, spread_ticks=2.0))
    assert wide.placement_weights[0] == 0.0 and len(wide.placement_weights) == 6
    with pytest.raises(ValueError, match="no (two-sided )?book"):
        fit_book([Events.empty()], table, 1)


# -- anchored to trades -------------------------------------------------------------------

KIWOOM = "tests/data/kiwoom-opt10079-ticks-039490-2022-12-22.csv"


def test_side_n_prints_take_the_tick_rule():
    px = np.array([100, 101, 101, 100, 100, 102])
    side = np.array([NONE, NONE, NONE, NONE, ASK, NONE], np.uint8)
    # first a buy; up a buy; equal: as before; down a sell; a recorded side stays; up a buy
    assert aggressors(px, side).tolist() == [BID, BID, BID, ASK, ASK, BID]


def made_trades():
    """A T-only tape built here: prints of both recorded sides and of none, several in one
    second, and a closing auction print (F_AUCTION) of 5,000 at 50,100."""
    day = date(2024, 3, 4)
    at = [pd.Timestamp(datetime.combine(day, datetime.min.time(), tzinfo=SEOUL)
                       + pd.Timedelta(hours=h, minutes=mi, seconds=s)).value
          for h, mi, s in ((10, 0, 0), (10, 0, 0), (10, 0, 1), (11, 30, 0), (13, 0, 5),
                           (15, 10, 0), (15, 30, 0))]
    px = [50_000, 50_100, 50_100, 49_800, 50_300, 50_200, 50_100]
    sz = [120, 30, 5_000, 700, 1, 64, 5_000]
    side = [BID, ASK, NONE, NONE, NONE, ASK, NONE]
    flags = [0, 0, 0, 0, 0, 0, F_AUCTION]
    n = len(at)
    ev = Events.from_columns({"ts": np.array(at), "instrument": np.full(n, 1),
                              "action": np.full(n, TRADE), "side": np.array(side),
                              "price": np.array(px), "size": np.array(sz),
                              "flags": np.array(flags)})
    inst = InstrumentTable([Instrument(1, "000100", venue="XKRX", prev_close_units=50_000,
                                       tick_units=100, market="KOSPI")])
    return ev, inst


def replayed_prints(path):
    tape = Tape(path)
    r = Replay(tape.instruments, venue="krx", seed=tape.session_seed).run(tape.chunks())
    return r.trades


def test_every_recorded_print_is_on_the_tape_and_in_its_replay(tmp_path):
    ev, inst = made_trades()
    path = write_trades_anchored_tape(tmp_path / "t.parquet", ev, inst, seed=4,
                                      event_rate=2.0)
    tape = Tape(path).read()
    t = (tape.action == TRADE) & ((tape.flags & F_AUCTION) == 0)
    assert tape.ts[t].tolist() == ev.ts[:-1].tolist()
    assert tape.price[t].tolist() == ev.price[:-1].tolist()
    assert tape.size[t].tolist() == ev.size[:-1].tolist()
    assert tape.side[t].tolist() == [BID, ASK, ASK, ASK, BID, ASK]  # N: the tick rule
    assert (tape.action == FILL).any() and len(tape) > 100  # a book around the prints
    tr = replayed_prints(path)
    cont = tr[tr.source != SRC_AUCTION]
    assert cont.ts.tolist() == ev.ts[:-1].tolist()
    assert cont.price.tolist() == ev.price[:-1].tolist()
    assert cont["size"].tolist() == ev.size[:-1].tolist()
    # the closing print came out of the venue's own uncross, at the session's close
    auction = tr[tr.source == SRC_AUCTION]
    assert auction.price.tolist() == [50_100] and auction["size"].tolist() == [5_000]
    assert auction.ts.iloc[0] == schedule(date(2024, 3, 4), 4).close_ns


def test_the_kiwoom_trades_replay_print_for_print(tmp_path):
    loaded = load("kiwoom-ticks", [KIWOOM])
    assert len(loaded.events) == 900
    out = tmp_path / "kiwoom.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--anchor", KIWOOM, "--format",
                                 "kiwoom-ticks", "--rate", "0.5", "--seed", "1", "-o",
                                 str(out)])
    assert r.exit_code == 0, r.output
    assert "900 prints" in r.output
    f = loaded.events
    tr = replayed_prints(out)
    assert len(tr) == 900
    # 899 prints of continuous trading, time, price and size as recorded
    assert tr.ts.tolist()[:-1] == f.ts.tolist()[:-1]
    assert tr.price.tolist() == f.price.tolist()
    assert tr["size"].tolist() == f.size.tolist()
    # 15:30:31 is the closing auction's print: the venue's uncross, at its close_ns
    assert tr.source.iloc[-1] == SRC_AUCTION
    assert tr.ts.iloc[-1] == schedule(date(2022, 12, 22), 1).close_ns
    bad = CliRunner().invoke(app, ["data", "synth", "--anchor", KIWOOM, "--format",
                                   "kiwoom-ticks", "--days", "2", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--days selects daily bars" in bad.output


def test_a_halted_day_has_no_rows_and_keeps_the_base(tmp_path):
    bars = pd.DataFrame({
        "code": ["123450"] * 3, "date": pd.to_datetime(["2024-08-01", "2024-08-02",
                                                        "2024-08-05"]),
        "open": [10_000, 0, 10_100], "high": [10_100, 0, 10_300], "low": [9_900, 0, 10_000],
        "close": [10_050, 10_050, 10_200], "volume": [200_000, 0, 150_000],
        "change": [0.005, 0.0, 0.0149], "market": ["KOSPI"] * 3})
    plan = plan_from_bars(bars, source="halt.csv")
    assert [d.traded for d in plan.names[0].days] == [True, False, True]
    assert plan.names[0].days[2].base == 10_050
    days = [seoul_date(int(t)) for ev, _ in synthesize_from_bars(plan, seed=1,
                                                                  event_rate=0.5)
            for t in ev.ts[:1]]
    assert date(2024, 8, 2) not in days and date(2024, 8, 5) in days


def test_a_flow_too_thick_to_merge_in_memory_is_refused(bars):
    plan = plan_from_bars(bars, source=BARS)
    with pytest.raises(ValueError, match="lower the rate"):
        next(synthesize_from_bars(plan, seed=1, event_rate=100.0))


def test_a_profile_fitted_from_the_kis_quote_recording_anchors_a_tape(bars):
    # the 117 real H0STASP0 frames of Samsung Electronics: a one-tick spread
    kis = load("kis", ["tests/data/kis-h0stasp0-005930-2026-02-20.csv"])
    inst = kis.instruments.instruments[0]
    fit = fit_book([kis.events], kis.instruments, inst.instrument_id)
    assert fit.snapshots == 117 and fit.spread_ticks == 1.0
    assert all(d > 0 for d in fit.depth) and len(fit.depth) == 10
    prof = fit_profile(LARGECAP, fit)
    plan = plan_from_bars(bars, source=BARS, codes=["005930"], days=1)
    (events, _), = synthesize_from_bars(plan, seed=1, profile=prof, event_rate=0.2)
    bar = plan.names[0].days[0]
    assert tape_ohlcv(events, 1)[bar.day][:4] == (bar.open, bar.high, bar.low, bar.close)
