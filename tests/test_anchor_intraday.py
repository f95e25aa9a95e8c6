"""Tapes anchored to intraday bars (docs/synthetic-tapes.md: anchored to intraday bars):
minute bars made from the real Kiwoom trades of 039490 on 2022-12-22, written in the Kiwoom
opt10080 layout and a generic one; every bar's open, high, low and close are the tape's
prints in that minute, its volume within 10%, nothing outside its range, and the KRX venue
replays the same."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.anchor_intraday import synthesize_from_intraday, write_intraday_anchored_tape
from replay.cli import app
from replay.engine import Replay
from replay.loaders import load
from replay.loaders.intraday_bars import read_intraday_bars
from replay.quality import TapeError
from replay.tape import F_AUCTION, FILL, TRADE, Tape
from venues.codes import SRC_AUCTION
from venues.krx.session import schedule

KIWOOM = "tests/data/kiwoom-opt10079-ticks-039490-2022-12-22.csv"
SHIPPED = "tests/data/kiwoom-opt10080-minutes-039490-2022-12-22.csv"
RATE = 0.5


def minute_bars() -> pd.DataFrame:
    """The real trades aggregated to 1-minute OHLCV, by the minute each print falls in
    (Seoul time): 57 bars, 14:24 to 15:19, and the 15:30 bar of the closing auction."""
    ev = load("kiwoom-ticks", [KIWOOM]).events
    t = pd.to_datetime(ev.ts).tz_localize("UTC").tz_convert("Asia/Seoul").floor("min")
    g = pd.DataFrame({"t": t, "p": ev.price, "s": ev.size}).groupby("t").agg(
        open=("p", "first"), high=("p", "max"), low=("p", "min"), close=("p", "last"),
        volume=("s", "sum"))
    return g


def write_kiwoom(g: pd.DataFrame, path) -> None:
    """opt10080 as saved from pandas: newest first, signed prices, CP949, an index column."""
    k = g.iloc[::-1]
    pd.DataFrame({"체결시간": k.index.strftime("%Y%m%d%H%M%S"),
                  "현재가": [f"+{x}" for x in k.close], "거래량": k.volume.to_numpy(),
                  "시가": [f"+{x}" for x in k.open], "고가": [f"+{x}" for x in k.high],
                  "저가": [f"+{x}" for x in k.low]}).to_csv(path, encoding="cp949")


def write_generic(g: pd.DataFrame, path) -> None:
    pd.DataFrame({"datetime": [t.isoformat() for t in g.index], "code": "039490",
                  "Open": g.open.to_numpy(), "High": g.high.to_numpy(),
                  "Low": g.low.to_numpy(), "Close": g.close.to_numpy(),
                  "Volume": g.volume.to_numpy()}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("intraday")
    g = minute_bars()
    kiwoom, generic = d / "kiwoom-opt10080-039490.csv", d / "bars.csv"
    write_kiwoom(g, kiwoom)
    write_generic(g, generic)
    return g, kiwoom, generic


def per_bar(ts, price, size, bars):
    """Each bar's (open, high, low, close, volume) of the prints in its interval."""
    out = []
    for b in bars.itertuples():
        m = (ts >= b.start) & (ts < b.end)
        p = price[m]
        out.append((int(p[0]), int(p.max()), int(p.min()), int(p[-1]), int(size[m].sum()))
                   if m.any() else None)
    return out


def assert_bars_hold(got, bars):
    for g, b in zip(got, bars.itertuples(), strict=True):
        assert g is not None, b
        assert g[:4] == (b.open, b.high, b.low, b.close), (b.start, g, b)
        assert abs(g[4] / b.volume - 1) <= 0.10, (b.start, g[4], b.volume)


def test_both_layouts_read_to_the_same_bars(files):
    g, kiwoom, generic = files
    a, b = read_intraday_bars(kiwoom), read_intraday_bars(generic)
    assert len(a) == 57 and a.attrs["interval_s"] == 60 and b.attrs["interval_s"] == 60
    cols = ["code", "start", "end", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    # Kiwoom's stamp is the bar's start: 14:24:00 KST holds the prints of 14:24:00-14:24:59
    first = pd.Timestamp(a.start.iloc[0], tz="UTC").tz_convert("Asia/Seoul")
    assert str(first) == "2022-12-22 14:24:00+09:00" and a.end.iloc[0] - a.start.iloc[0] == 60e9
    assert a.close.tolist() == g.close.tolist() and a.volume.sum() == g.volume.sum()
    # the newest-first file's last line is the oldest bar
    assert a.row.iloc[0] == 58 and a.row.iloc[-1] == 2
    # stamps at the bar's end give the same intervals one minute earlier
    e = read_intraday_bars(generic, stamp="end")
    assert (e.start == a.start - 60 * 10**9).all()
    # the shipped file of the docs' examples is these bars
    shipped = read_intraday_bars(SHIPPED)
    pd.testing.assert_frame_equal(shipped[cols], a[cols])


def test_every_bar_is_the_tapes_prints_in_its_minute(files):
    _, kiwoom, _ = files
    bars = read_intraday_bars(kiwoom)
    (events, table), = synthesize_from_intraday(bars, seed=1, event_rate=RATE)
    assert table[1].symbol == "039490" and table[1].prev_close_units == bars.open.iloc[0]
    t = events.action == TRADE
    assert_bars_hold(per_bar(events.ts[t], events.price[t], events.size[t], bars), bars)
    # every print lies in a bar's interval, every fill in its bar's range
    inside = np.zeros(t.sum(), bool)
    f = events.action == FILL
    for b in bars.itertuples():
        inside |= (events.ts[t] >= b.start) & (events.ts[t] < b.end)
        m = f & (events.ts >= b.start) & (events.ts < b.end)
        assert ((events.price[m] >= b.low) & (events.price[m] <= b.high)).all()
    assert inside.all()
    # the 15:30 bar is the closing auction's uncross, its whole volume
    last = np.flatnonzero(t)[-1]
    assert events.flags[last] & F_AUCTION and events.size[last] == 2_623
    assert np.all(np.diff(events.ts) >= 0)


def test_the_krx_venue_replays_the_same_minute_bars(files, tmp_path):
    _, _, generic = files
    bars = read_intraday_bars(generic)
    path = write_intraday_anchored_tape(tmp_path / "t.parquet", bars, seed=3,
                                        event_rate=RATE)
    tape = Tape(path)
    tr = Replay(tape.instruments, venue="krx", seed=tape.session_seed).run(
        tape.chunks()).trades
    assert (tr.source == SRC_AUCTION).sum() == 1  # the venue's own closing uncross
    assert_bars_hold(per_bar(tr.ts.to_numpy(), tr.price.to_numpy(), tr["size"].to_numpy(),
                             bars), bars)


def test_same_bars_and_seed_give_identical_bytes(files, tmp_path):
    _, kiwoom, _ = files
    bars = read_intraday_bars(kiwoom)
    a = write_intraday_anchored_tape(tmp_path / "a.parquet", bars, seed=7, event_rate=RATE)
    b = write_intraday_anchored_tape(tmp_path / "b.parquet", bars, seed=7, event_rate=RATE)
    c = write_intraday_anchored_tape(tmp_path / "c.parquet", bars, seed=8, event_rate=RATE)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_a_first_bar_at_nine_opens_through_the_opening_auction(tmp_path):
    csv = tmp_path / "open.csv"
    csv.write_text("datetime,code,open,high,low,close,volume\n"
                   "2024-08-02 09:00:00,000100,50000,50300,49900,50100,40000\n"
                   "2024-08-02 09:01:00,000100,50100,50200,50000,50000,3000\n"
                   "2024-08-02 09:02:00,000100,50000,50000,49800,49900,2500\n"
                   "2024-08-02 15:30:00,000100,50200,50200,50200,50200,9000\n")
    bars = read_intraday_bars(csv)
    path = write_intraday_anchored_tape(tmp_path / "o.parquet", bars, seed=2, event_rate=2)
    events = Tape(path).read()
    t = events.action == TRADE
    first = np.flatnonzero(t)[0]
    assert events.flags[first] & F_AUCTION and events.price[first] == 50_000
    assert events.size[first] == 20_000  # OPEN_AUCTION_SHARE of the 09:00 bar
    assert_bars_hold(per_bar(events.ts[t], events.price[t], events.size[t], bars), bars)
    tape = Tape(path)
    tr = Replay(tape.instruments, venue="krx", seed=2).run(tape.chunks()).trades
    assert (tr.source == SRC_AUCTION).sum() == 2
    assert_bars_hold(per_bar(tr.ts.to_numpy(), tr.price.to_numpy(), tr["size"].to_numpy(),
                             bars), bars)


def bad_file(tmp_path, g, edit) -> str:
    path = tmp_path / "kiwoom-opt10080-039490.csv"
    write_kiwoom(g, path)
    lines = path.read_text(encoding="cp949").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="cp949")
    return str(path)


def test_bad_bars_are_errors_naming_file_row_and_field(files, tmp_path):
    g = files[0]

    def high_below_low(lines):  # line 3: the 15:19 bar, high 90400 -> 90200 (low 90300)
        f = lines[2].split(",")
        f[5] = "+90200"
        lines[2] = ",".join(f)

    def swapped(lines):  # lines 4 and 5 swapped: the newest-first file runs backwards there
        lines[3], lines[4] = lines[4], lines[3]

    def fraction(lines):
        f = lines[5].split(",")
        f[2] = "+90300.5"
        lines[5] = ",".join(f)

    for edit, row, field, why in ((high_below_low, 3, "고가", "below low"),
                                  (swapped, 5, "체결시간", "out of order"),
                                  (fraction, 6, "현재가", "not a price in whole won")):
        path = bad_file(tmp_path, g, edit)
        with pytest.raises(TapeError) as exc:
            read_intraday_bars(path)
        assert (exc.value.file, exc.value.row, exc.value.field) == (path, row, field), exc.value
        assert why in str(exc.value)


def test_the_anchor_names_a_bar_outside_the_days_limits(tmp_path):
    csv = tmp_path / "wild.csv"
    csv.write_text("Datetime,Code,Open,High,Low,Close,Volume\n"
                   "2024-08-02 10:00:00,000100,50000,50000,50000,50000,10\n"
                   "2024-08-02 10:01:00,000100,50000,70000,50000,50000,10\n")
    with pytest.raises(TapeError) as exc:
        next(synthesize_from_intraday(read_intraday_bars(csv), seed=1, event_rate=1))
    # the file's own column name, as the reader's errors give it
    assert (exc.value.row, exc.value.field) == (3, "High") and "65000" in str(exc.value)
    csv.write_text("datetime,code,open,high,low,close,volume\n"
                   "2024-08-02 08:50:00,000100,50000,50000,50000,50000,10\n"
                   "2024-08-02 10:01:00,000100,50000,50000,50000,50000,10\n")
    with pytest.raises(TapeError) as exc:
        next(synthesize_from_intraday(read_intraday_bars(csv, interval=60), seed=1))
    assert (exc.value.row, exc.value.field) == (2, "datetime") and "before 09:00" in \
        str(exc.value)


def test_cli_anchors_a_tape_to_intraday_bars(files, tmp_path):
    _, kiwoom, _ = files
    out = tmp_path / "cli.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--anchor", str(kiwoom), "--format",
                                 "intraday-bars", "--rate", "0.5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "57 bars (60 s)" in r.output and Tape(out).instruments[1].symbol == "039490"
    r = CliRunner().invoke(app, ["data", "synth", "--anchor", str(kiwoom), "--format",
                                 "intraday-bars", "--codes", "005930", "-o",
                                 str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "code 005930 is not in the file" in r.output, r.output


def test_a_bar_too_wide_for_its_interval_is_refused(tmp_path):
    # 50,000 to 60,000 in steps of at most 2% a second does not fit in one second
    csv = tmp_path / "wide.csv"
    csv.write_text("datetime,code,open,high,low,close,volume\n"
                   "2024-08-02 10:00:00,000100,50000,50000,50000,50000,10\n"
                   "2024-08-02 10:00:01,000100,50000,60000,50000,50000,10\n")
    bars = read_intraday_bars(csv, interval=1)
    with pytest.raises(TapeError) as exc:
        next(synthesize_from_intraday(bars, seed=1, event_rate=1))
    assert (exc.value.row, exc.value.field) == (3, "high") and "interval" in str(exc.value)
    # in a minute, the same bar is reproduced
    csv.write_text(csv.read_text().replace("10:00:01", "10:01:00"))
    bars = read_intraday_bars(csv)
    (events, _), = synthesize_from_intraday(bars, seed=1, event_rate=1)
    t = events.action == TRADE
    assert per_bar(events.ts[t], events.price[t], events.size[t], bars)[1][:4] == (
        50_000, 60_000, 50_000, 50_000)


def test_two_codes_over_two_days_each_hold_their_bars(tmp_path):
    g = minute_bars()
    rows = []
    for code in ("039490", "000660"):
        for shift in (0, 1):  # 2022-12-22 and the next trading day, 12-23
            for t, r in g.iterrows():
                rows.append(((t + pd.Timedelta(days=shift)).isoformat(), code, r.open,
                             r.high, r.low, r.close, r.volume))
    csv = tmp_path / "two.csv"
    pd.DataFrame(rows, columns=["datetime", "code", "open", "high", "low", "close",
                                "volume"]).to_csv(csv, index=False)
    bars = read_intraday_bars(csv)
    out = list(synthesize_from_intraday(bars, seed=4, event_rate=1))
    assert len(out) == 2
    for events, table in out:
        assert np.all(np.diff(events.ts) >= 0)
        assert (np.diff(events.sequence.astype(np.int64)) == 1).all()
        for inst in table:
            mine = bars[bars.code == inst.symbol]
            day = pd.to_datetime(mine.start, utc=True).dt.tz_convert("Asia/Seoul").dt.date
            mine = mine[day == pd.Timestamp(events.ts[0], tz="UTC").tz_convert(
                "Asia/Seoul").date()]
            t = (events.instrument == inst.instrument_id) & (events.action == TRADE)
            assert_bars_hold(per_bar(events.ts[t], events.price[t], events.size[t], mine),
                             mine)
    # the second day's base is the first day's last close
    assert [i.prev_close_units for i in out[1][1]] == [90_500, 90_500]
    csv.write_text("datetime,code,open,high,low,close,volume\n"
                   "2022-12-25 10:00:00,000100,50000,50000,50000,50000,10\n")
    with pytest.raises(TapeError, match="not an XKRX trading day"):
        next(synthesize_from_intraday(read_intraday_bars(csv, interval=60), seed=1))


def test_second_bars_inside_the_opening_auctions_random_end_are_refused(tmp_path):
    csv = tmp_path / "seconds.csv"
    csv.write_text("datetime,code,open,high,low,close,volume\n"
                   "2024-08-02 09:00:00,000100,50000,50000,50000,50000,10\n"
                   "2024-08-02 09:00:01,000100,50000,50000,50000,50000,10\n")
    bars = read_intraday_bars(csv)
    seed = next(s for s in range(1, 50)
                if schedule(date(2024, 8, 2), s).open_ns > bars.end.iloc[0])
    with pytest.raises(TapeError) as exc:
        next(synthesize_from_intraday(bars, seed=seed, event_rate=1))
    assert exc.value.row == 2 and "random end" in str(exc.value)


def test_a_day_too_thick_to_merge_in_memory_is_refused(files):
    bars = read_intraday_bars(files[1])
    # about 3,300 s of bars: at 2,000 decisions a second, 7 million rows
    with pytest.raises(ValueError, match="lower the rate"):
        next(synthesize_from_intraday(bars, seed=1, event_rate=2_000.0))
