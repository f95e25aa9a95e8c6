"""KOSPI and KOSDAQ from the tape's constituents, each with its own circuit breakers, and the
futures proxy that drives the sidecar (docs/krx-venue.md: indices).

Every level is worked out in the comments from the names' shares and prices and the prior
close given; "krx.md:NN" cites the line of docs/reference/krx.md a test implements.
"""

from __future__ import annotations

import json
from datetime import time as t

import pytest
from typer.testing import CliRunner

from brokers.engine import Broker
from brokers.population import Population
from brokers.rules import load_rules
from replay.cli import app
from replay.engine import Replay
from replay.runner import RunSpec, index_closes
from replay.tape import ASK, BID, TRADE, Instrument, InstrumentTable, write_tape
from tests.test_krx_venue import DAY, LMT, MIN, NEXT_DAY, SEC, Tape, orders
from venues.codes import RJ_HALTED, RJ_SIDECAR, ST_EXPIRED, ST_FILLED, ST_REJECTED
from venues.krx.session import seoul_ns
from venues.krx.venue import KrxRules
from venues.rules import J_PROGRAM

# the prior closes of 2024-08-05 as krx.md:101-104 implies them (KOSPI 2,441.55 at -8.77%,
# KOSDAQ 691.28 at -11.30%)
KOSPI_CLOSE, KOSDAQ_CLOSE = 2676.19, 779.33
FILLED, EXPIRED, REJECTED = ST_FILLED, ST_EXPIRED, ST_REJECTED


def name(iid, symbol, market, shares, base, *, kospi200=False):
    return Instrument(iid, symbol, venue="XKRX", prev_close_units=base, market=market,
                      shares_outstanding=shares, index_member="KOSPI200" if kospi200 else "")


# A and B on KOSPI, C on KOSDAQ. KOSPI's capitalisation at the prior close:
# 9,000 x 10,000 + 1,000 x 10,000 = 100,000,000 (A weighs 0.9, B 0.1); KOSDAQ's:
# 2,000 x 5,000 = 10,000,000.
A = name(1, "A", "KOSPI", 9_000, 10_000)
B = name(2, "B", "KOSPI", 1_000, 10_000)
C = name(3, "C", "KOSDAQ", 2_000, 5_000)


def opened(tape: Tape, *names: Instrument) -> Tape:
    """Each name's opening auction crosses 100 shares at its base price."""
    for n in names:
        tape.add(t(8, 40), BID, n.prev_close_units, 100, n.instrument_id)
        tape.add(t(8, 40), ASK, n.prev_close_units, 100, n.instrument_id)
    return tape


def prints(tape: Tape, inst: int, start: int, path: list[int]) -> None:
    """A print of 10 shares at each price of ``path``, one every 10 s from ``start``."""
    for k, px in enumerate(path):
        tape.row(start + k * 10 * SEC, inst, TRADE, ASK, px, 10)


def two_market_tape() -> Tape:
    """A falls to 9,100 at 10:00:10, is back at 9,200 at 10:00:40 and at 9,100 from
    10:00:50; C falls to 4,550 at 11:00:10. C also offers 100 at 5,010 from 09:30."""
    tape = opened(Tape(), A, B, C)
    tape.add(t(9, 30), ASK, 5_010, 100, 3)
    # A: 9,600 (-4%, inside the 6% dynamic VI), 9,100 (-5.2% from 9,600; -9% from the open,
    # inside the 10% static VI), ..., one print back at 9,200, then 9,100 to 10:01:50
    prints(tape, 1, seoul_ns(DAY, t(10, 0)), [9_600, 9_100, 9_100, 9_100, 9_200]
           + [9_100] * 7)
    # C: 4,800 (-4.2% from its last, 5,010), then 4,550 (-5.2%; -9% from the open) to 11:01:30
    prints(tape, 3, seoul_ns(DAY, t(11, 0)), [4_800] + [4_550] * 9)
    return tape


def run(tape, instruments, injected=None, **kw):
    rp = Replay(InstrumentTable(instruments), venue="krx", seed=1, **kw)
    return rp, rp.run([tape.events()], injected)


def breakers(result):
    ev = result.venue_events
    return ev[ev.kind.str.startswith("circuit_breaker")]


# -- (a) two markets, two breakers ----------------------------------------------------------

def test_each_market_has_its_own_index_and_its_breaker_halts_only_its_names():
    # krx.md:56: -8% held 1 minute -> 20-minute halt, then a 10-minute auction.
    # KOSPI with A at 9,100: (9,000 x 9,100 + 1,000 x 10,000) / 100,000,000 = 0.919, -8.1%
    # (2,676.19 x 0.919 = 2,459.41861); at 9,200: 0.928, -7.2%, above the trigger
    # 100,000,000 x 9,200 / 10,000 = 92,000,000. Below from 10:00:10, above at 10:00:40,
    # below again from 10:00:50: the breaker fires at 10:01:50, not at 10:01:10.
    # KOSDAQ with C at 4,550: 2,000 x 4,550 / 10,000,000 = 0.91 (779.33 x 0.91 = 709.1903),
    # below from 11:00:10: its breaker fires at 11:01:10.
    kospi_at = seoul_ns(DAY, t(10, 1, 50))
    kosdaq_at = seoul_ns(DAY, t(11, 1, 10))
    inj = orders(
        (kospi_at + 3 * MIN, 1, BID, LMT, 9_100, 10),  # A during KOSPI's halt: rejected
        (kospi_at + 3 * MIN, 3, BID, LMT, 5_010, 10),  # C (KOSDAQ) trades on: filled
        (kosdaq_at + 3 * MIN, 1, BID, LMT, 9_100, 10),  # A in KOSDAQ's halt: rests to 16:00
        (kosdaq_at + 3 * MIN, 3, BID, LMT, 4_550, 10))  # C during KOSDAQ's halt: rejected
    rp, r = run(two_market_tape(), [A, B, C], inj,
                index_prior_close={"KOSPI": KOSPI_CLOSE, "KOSDAQ": KOSDAQ_CLOSE})
    cb = breakers(r)
    assert list(zip(cb.kind, cb.market, cb.ts, strict=True)) == [
        ("circuit_breaker_1", "KOSPI", kospi_at), ("circuit_breaker_1", "KOSDAQ", kosdaq_at)]
    assert cb.price.tolist() == [91_900_000, 9_100_000]  # the numerators at the trigger
    assert cb.reference.tolist() == [100_000_000, 10_000_000]  # and at the prior close
    assert cb["index"].tolist() == pytest.approx([KOSPI_CLOSE * 0.919, KOSDAQ_CLOSE * 0.91])
    assert r.injected.status.tolist() == [REJECTED, FILLED, EXPIRED, REJECTED]
    assert r.injected.reason[0] == r.injected.reason[3] == RJ_HALTED
    # each reopening auction reopens its own market's names, 30 minutes after its breaker
    reopen = r.venue_events[r.venue_events.kind == "uncross_reopen"]
    kospi_reopen = reopen[reopen.ts < kosdaq_at]
    assert sorted(kospi_reopen.symbol) == ["A", "B"]
    assert sorted(reopen[reopen.ts > kosdaq_at].symbol) == ["C"]
    assert (30 * MIN <= kospi_reopen.ts - kospi_at).all()
    assert (kospi_reopen.ts - kospi_at < 30 * MIN + 30 * SEC).all()
    # the day closes where it stood: both indices' close is their low
    days = {d["index"]: d for d in rp.venue.index_days}
    assert days[0]["close"] == pytest.approx(KOSPI_CLOSE * 0.919)
    assert days[1]["close"] == pytest.approx(KOSDAQ_CLOSE * 0.91)
    assert days[0]["capitalisation_low"] == 91_900_000


def test_the_kospi_breaker_does_not_fire_before_its_minute():
    # The same fall of A, but it ends at 10:01:40 (the print at 10:01:50 is 9,200): held
    # from 10:00:50 for 50 s only, the breaker never fires; KOSDAQ's does all the same.
    tape = opened(Tape(), A, B, C)
    prints(tape, 1, seoul_ns(DAY, t(10, 0)), [9_600, 9_100, 9_100, 9_100, 9_200]
           + [9_100] * 6 + [9_200] * 3)
    prints(tape, 3, seoul_ns(DAY, t(11, 0)), [4_750] + [4_550] * 9)
    _, r = run(tape, [A, B, C])
    assert breakers(r).market.tolist() == ["KOSDAQ"]


def test_kospis_stage_3_ends_kospis_day_and_kosdaq_trades_on():
    # krx.md:58-59: stage 3 (-20%, the only stage after 14:50) ends trading for the day, of
    # that market only. A from 14:55 (steps inside the 6% dynamic VI; static VI off):
    # 9,500, 9,000, 8,550, 8,100, then 7,700 from 14:55:40: (9,000 x 7,700 + 1,000 x
    # 10,000) / 100,000,000 = 0.793, -20.7%, at or below the trigger 80,000,000 a minute
    # later, at 14:56:40.
    tape = opened(Tape(), A, B, C)
    tape.add(t(9, 30), ASK, 5_010, 100, 3)
    prints(tape, 1, seoul_ns(DAY, t(14, 55)), [9_500, 9_000, 8_550, 8_100] + [7_700] * 8)
    at = seoul_ns(DAY, t(14, 56, 40))
    _, r = run(tape, [A, B, C], orders((at + MIN, 1, BID, LMT, 7_700, 10),  # A: closed
                                       (at + MIN, 3, BID, LMT, 5_010, 10)),  # C: fills
               krx_rules=KrxRules(static_vi_bp=0))
    cb = breakers(r)
    assert list(zip(cb.kind, cb.market, cb.ts, strict=True)) == [
        ("circuit_breaker_3", "KOSPI", at)]
    assert r.injected.status.tolist() == [REJECTED, FILLED]
    closing = r.venue_events[r.venue_events.kind == "uncross_close"]
    assert closing.symbol.tolist() == ["C"]  # A and B had no closing auction


def test_a_later_days_prior_close_is_the_simulated_close_before_it():
    # Day 1 as in the first test: KOSPI closes at 0.919 of 2,676.19. Day 2 opens from A's
    # close, 9,100 (capitalisation 91,900,000); A prints 9,500 (+4.4%): 95,500,000, so
    # KOSPI closes at 2,676.19 x 0.919 x 95.5 / 91.9 = 2,676.19 x 0.955.
    tape = two_market_tape()
    tape.row(seoul_ns(NEXT_DAY, t(10, 0)), 1, TRADE, ASK, 9_500, 10)
    rp, _ = run(tape, [A, B, C], index_prior_close=KOSPI_CLOSE)
    kospi = rp.venue.index_report()["KOSPI"]
    day1, day2 = kospi["days"]
    assert day2["prior_close"] == day1["close"] == pytest.approx(KOSPI_CLOSE * 0.919)
    assert day2["close"] == kospi["close"] == pytest.approx(KOSPI_CLOSE * 0.955)
    assert day2["close_return"] == pytest.approx(95.5 / 91.9 - 1)
    assert kospi["close_return"] == pytest.approx(-0.045)
    assert kospi["low_return"] == pytest.approx(-0.081)  # day 1's low


def test_a_single_number_is_kospis_prior_close():
    rp, r = run(two_market_tape(), [A, B, C], index_prior_close=KOSPI_CLOSE)
    cb = breakers(r).set_index("market")
    assert cb.loc["KOSPI", "index"] == pytest.approx(KOSPI_CLOSE * 0.919)
    assert cb.loc["KOSDAQ", "index"] == pytest.approx(0.91)  # rebased to 1: none given
    assert rp.venue.index_closes == {"KOSPI": KOSPI_CLOSE}


@pytest.mark.parametrize("given, message", [
    ({"KOSPI": -1.0}, "KOSPI=-1.0: must be a positive number"),
    ({"KOSPI": "abc"}, "not a number"),
    ({"NIKKEI": 38_000.0}, "unknown index"),
    ({"KOSDAQ": float("nan")}, "must be a positive number"),
])
def test_an_invalid_prior_close_is_a_clear_error(given, message):
    with pytest.raises(ValueError, match=message):
        Replay(InstrumentTable([A]), venue="krx", index_prior_close=given)


def test_kospis_close_given_twice_must_agree(tmp_path):
    spec = RunSpec(tape=None, output=tmp_path, index_prior_close=2_676.19,
                   index_closes={"KOSPI": 2_600.0})
    with pytest.raises(ValueError, match="disagree"):
        index_closes(spec)
    spec.index_closes = {"KOSPI": 2_676.19, "KOSDAQ": 779.33}
    assert index_closes(spec) == {"KOSPI": 2_676.19, "KOSDAQ": 779.33}


# -- (b) one account holding both names --------------------------------------------------------

def test_a_fall_in_a_breaks_a_portfolio_account_that_sells_b_and_moves_the_index():
    # An instant account (maintenance 140% on every trade, the whole position at market)
    # holding 50 A and 50 B at 10,000, loan 710,000: breached when
    # 50 A + 50 B < 1.4 x 710,000 = 994,000. A's print at 9,900: 495,000 + 500,000 = 995,000,
    # not breached; at 9,850: 992,500: breached. It sells 50 A (at A's bid, 9,840) and 50 B
    # into B's bids: 30 @ 9,990 and 20 @ 9,980, B's last 9,980.
    # KOSPI then: (9,000 x 9,840 + 1,000 x 9,980) / 100,000,000 = 0.9854, -1.46%.
    tape = opened(Tape(), A, B)
    tape.add(t(9, 30), BID, 9_840, 100, 1)
    for px, size in ((9_990, 30), (9_980, 30), (9_970, 100)):
        tape.add(t(9, 30), BID, px, size, 2)
    prints(tape, 1, seoul_ns(DAY, t(10, 0)), [9_900, 9_850])
    pop = Population(account_id=[7], kind=[3], cash=[0], loan=[710_000], pos_account=[0, 0],
                     pos_instrument=[1, 2], pos_shares=[50, 50], pos_entry=[10_000] * 2,
                     pos_trade_date=[19_723] * 2)
    rp = Replay(InstrumentTable([A, B]), venue="krx", seed=1,
                index_prior_close=KOSPI_CLOSE)
    broker = Broker(load_rules("instant"), pop, seed=1).attach(rp)
    r = rp.run([tape.events()])
    forced = broker.forced_orders().set_index("instrument")
    assert sorted(forced.index) == [1, 2]
    assert forced.loc[2, ["qty", "filled_qty", "generation"]].tolist() == [50, 50, 0]
    assert forced.loc[2, "avg_price"] == (30 * 9_990 + 20 * 9_980) / 50
    assert forced.loc[1, "avg_price"] == 9_840
    b_prints = r.trades[r.trades.instrument == 2]
    assert b_prints.price.tolist() == [10_000, 9_990, 9_980]  # the open, then the sale
    kospi = rp.venue.index_report()["KOSPI"]
    assert kospi["close"] == pytest.approx(KOSPI_CLOSE * 0.9854)
    assert kospi["low_return"] == pytest.approx(-0.0146)


# -- (c) the futures proxy and the sidecar ----------------------------------------------------

# D is a KOSPI200 member; E is not, and holds most of KOSPI: the proxy follows D alone.
D = name(1, "D", "KOSPI", 1_000, 10_000, kospi200=True)
E = name(2, "E", "KOSPI", 1_000_000, 10_000)


def proxy_tape(low: int) -> Tape:
    """D at 9,750 at 09:01:00 (-2.5%, inside the 3% dynamic VI of a KOSPI200 name), then at
    ``low`` every 10 s to 09:08:00; D bids 100 at 9,400 from 08:50."""
    tape = opened(Tape(), D, E)
    tape.add(t(8, 50), BID, 9_400, 100, 1)
    prints(tape, 1, seoul_ns(DAY, t(9, 1)), [9_750] + [low] * 42)
    return tape


def sidecars(result):
    ev = result.venue_events
    return ev[ev.kind.str.startswith("sidecar")]


def test_the_futures_proxy_fires_the_sidecar_after_a_minute_but_not_in_the_first_five():
    # krx.md:61-62: KOSPI200 future -5% for 1 minute -> program sells suspended 5 minutes;
    # not in the first 5 minutes. With no future in the tape the proxy is D's index: at
    # 9,500, 1,000 x 9,500 / 10,000,000 = 0.95, -5%, from 09:01:10. The sidecar is armed at
    # 09:05 (the open plus 5 minutes), holds from the print at 09:05:00 and fires at
    # 09:06:00; a proxy at 350.00 at the prior close stands at 332.50.
    fired = seoul_ns(DAY, t(9, 6))
    inj = orders((fired + MIN, 1, ASK, LMT, 9_400, 10),  # a program sell: suspended
                 (fired + MIN, 1, ASK, LMT, 9_400, 10),  # not a program order: fills
                 program=[J_PROGRAM, 0])
    rp, r = run(proxy_tape(9_500), [D, E], inj, index_prior_close={"KOSPI200": 350.0})
    sc = sidecars(r)
    assert list(zip(sc.kind, sc.symbol, sc.market, sc.ts, strict=True)) == [
        ("sidecar_sell", "KOSPI200F", "KOSPI", fired)]
    assert sc["index"].iloc[0] == pytest.approx(332.5)
    assert sc.release_ts.iloc[0] == fired + 5 * MIN
    assert r.injected.status.tolist() == [REJECTED, FILLED]
    assert r.injected.reason[0] == RJ_SIDECAR
    assert not len(breakers(r))  # KOSPI: (9,500,000 + 10^10) / 10,010,000,000, -0.005%
    proxy = rp.venue.index_report()["KOSPI200F"]
    assert (proxy["follows"], proxy["basis_bp"], proxy["names"]) == ("KOSPI200", 0, 1)


def test_the_proxys_basis_moves_its_trigger():
    # With a basis of -100 bp the proxy is the index x 0.99: D at 9,590 puts it at
    # 0.959 x 0.99 = 0.94941, past -5% (a trigger at 10,000,000 x 9,500 // 9,900 =
    # 9,595,959 of D's capitalisation); with no basis 0.959 is not.
    assert not len(sidecars(run(proxy_tape(9_590), [D, E])[1]))
    _, r = run(proxy_tape(9_590), [D, E], krx_rules=KrxRules(futures_basis_bp=-100),
               index_prior_close={"KOSPI200": 350.0})
    sc = sidecars(r)
    assert sc.ts.tolist() == [seoul_ns(DAY, t(9, 6))]
    assert sc["index"].iloc[0] == pytest.approx(350.0 * 0.959 * 0.99)


def test_a_future_in_the_tape_replaces_the_proxy():
    fut = Instrument(9, "K200F", venue="XKRX", prev_close_units=40_000, market="FUTURES")
    rp, r = run(proxy_tape(9_500), [D, E, fut])
    assert not len(sidecars(r))  # the future did not move
    assert "KOSPI200F" not in rp.venue.index_report()


# -- (d) summary.json ---------------------------------------------------------------------------

def test_summary_json_reports_each_index_with_its_halts(tmp_path):
    # The tape of the first test without its orders. KOSPI (A 0.9, B 0.1): prior 2,676.19,
    # close and low 2,676.19 x 0.919 = 2,459.41861 (-8.1%), its breaker at 10:01:50. KOSDAQ
    # (C alone): 779.33 -> 779.33 x 0.91 = 709.1903 (-9%), its breaker at 11:01:10. No
    # KOSPI200 member: the futures proxy follows KOSPI, -5% or lower from 10:00:10 (at
    # 10:00:40 still -7.2%), so its sidecar fires at 10:01:10 at 2,459.41861.
    tape = write_tape(tmp_path / "two.parquet", two_market_tape().events(),
                      InstrumentTable([A, B, C]))
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["replay", str(tape), "--index-close", "KOSPI=2676.19",
                                 "--index-close", "kosdaq=779.33", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "KOSPI close 2,459.42 (-8.10%)" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["index_closes"] == {"KOSPI": 2676.19, "KOSDAQ": 779.33}
    ix = summary["indices"]
    assert list(ix) == ["KOSPI", "KOSDAQ", "KOSPI200F"]
    kospi, kosdaq, proxy = ix["KOSPI"], ix["KOSDAQ"], ix["KOSPI200F"]
    assert (kospi["names"], kospi["largest_weights"]) == (2, {"A": 0.9, "B": 0.1})
    assert kospi["capitalisation_prior_close"] == 100_000_000
    assert (kospi["prior_close"], kospi["prior_close_given"]) == (2676.19, True)
    assert kospi["close"] == kospi["low"] == pytest.approx(2676.19 * 0.919)
    assert kospi["close_return"] == pytest.approx(-0.081)
    assert [(e["kind"], e["time_seoul"]) for e in kospi["events"]] == [
        ("circuit_breaker_1", "10:01:50")]
    ev = kospi["events"][0]
    assert ev["ts_ns"] == seoul_ns(DAY, t(10, 1, 50))
    assert (ev["level"], ev["return"]) == (pytest.approx(2676.19 * 0.919), -0.081)
    assert (kosdaq["names"], kosdaq["largest_weights"]) == (1, {"C": 1.0})
    assert kosdaq["close"] == pytest.approx(779.33 * 0.91)
    assert kosdaq["close_return"] == pytest.approx(-0.09)
    assert [(e["kind"], e["time_seoul"]) for e in kosdaq["events"]] == [
        ("circuit_breaker_1", "11:01:10")]
    assert (proxy["proxy"], proxy["follows"], proxy["basis_bp"]) == (True, "KOSPI", 0)
    assert [(e["kind"], e["time_seoul"], e["level"]) for e in proxy["events"]] == [
        ("sidecar_sell", "10:01:10", pytest.approx(2676.19 * 0.919))]
    assert kospi["days"][0]["day"] == DAY.isoformat()
    assert summary["venue_summary"]["circuit_breakers"] == 2


@pytest.mark.parametrize("option, message", [
    ("KOSPI", "give NAME=POINTS"), ("KOSPI=abc", "not a number"),
    ("DOW=40000", "unknown index"), ("KOSPI=0", "positive")])
def test_a_bad_index_close_option_is_a_clear_error(tmp_path, option, message):
    tape = write_tape(tmp_path / "one.parquet", opened(Tape(), A).events(),
                      InstrumentTable([A]))
    r = CliRunner().invoke(app, ["replay", str(tape), "--index-close", option,
                                 "-o", str(tmp_path / "run")])
    assert r.exit_code != 0 and "--index-close" in r.output and message in r.output
    assert not (tmp_path / "run").exists()

