"""A market's leverage: a population spec's ``[market]`` table lays each market's credit
balance on the names of the bars (by credit ratio, a concentration group's share, turnover),
exactly to the won, forms portfolio accounts of several names, and a forced sale of one name
that breaks a portfolio account sells its other names one generation on
(docs/brokers.md: a market's leverage)."""

from __future__ import annotations

from datetime import date
from datetime import time as t
from pathlib import Path

import numpy as np
import pytest

from brokers.engine import Broker
from brokers.population import Population, merge_accounts
from brokers.rules import load_rules
from brokers.synthetic_population import _portfolio_groups
from replay.engine import InjectedOrders, Replay
from replay.loaders.credit import read_credit_balance
from replay.loaders.daily_bars import read_bars
from replay.loaders.population import synthesize_market_population, synthesize_population
from replay.tape import ADD, ASK, BID, F_LAST, TRADE, Events, Instrument, InstrumentTable
from venues.codes import ORDER_TYPES
from venues.krx.session import seoul_ns

DATA = Path(__file__).parent / "data"
LARGECAPS = DATA / "daily-2024-08-largecaps-pykrx.csv"
CREDIT = DATA / "kospi-index-credit-balance-daily.csv"
MARKET = ORDER_TYPES["market"]

# Four names at 10,000 won on 08-01 and 08-02, volumes 50, 100, 150, 200 a day: over a
# two-day term their turnovers are 1, 2, 3 and 4 million won (weights 1:2:3:4).
CODES = ("111110", "222220", "333330", "444440")


@pytest.fixture
def small(tmp_path: Path) -> Path:
    rows = ["code,날짜,시가,고가,저가,종가,거래량"]
    for code, vol in zip(CODES, (50, 100, 150, 200), strict=True):
        for day in ("2024-08-01", "2024-08-02"):
            rows.append(f"{code},{day},10000,10000,10000,10000,{vol}")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


TABLE = InstrumentTable([Instrument(k + 1, c, venue="XKRX", shares_outstanding=1_000_000)
                         for k, c in enumerate(CODES)])


def spec(bars: Path, **market) -> dict:
    return {"bars": str(bars), "loan_term_days": 2,
            "market": {"as_of": "2024-08-02", "accounts": 1000, "default_market": "KOSPI",
                       "kospi_credit_balance_krw": 1_000_000_001, **market}}


def credit_of(split) -> list[int]:
    return split.names.set_index("code").credit_krw.loc[list(CODES)].tolist()


def test_spread_by_turnover_to_the_won(small):
    # 1,000,000,001 x 1:2:3:4 / 10 = 100,000,000.1, 200,000,000.2, 300,000,000.3,
    # 400,000,000.4: the floors sum to 1,000,000,000; the one won left goes to the largest
    # remainder (444440's .4)
    _, split = synthesize_market_population(spec(small), TABLE, seed=1)
    assert credit_of(split) == [100_000_000, 200_000_000, 300_000_000, 400_000_001]
    assert split.markets["KOSPI"]["names_credit_krw"] == 1_000_000_001
    assert split.markets["KOSPI"]["credit_source"] == "given in the spec"


def test_a_concentration_group_holds_its_share(small):
    # the group 333330, 444440 holds round(0.6 x 1,000,000,001) = 600,000,001, split 3:4:
    # 257,142,857.57 and 342,857,143.43 -> floors 600,000,000, the won left to 333330.
    # The other 400,000,000 split 1:2: 133,333,333.33 and 266,666,666.67 -> the won to 222220
    _, split = synthesize_market_population(
        spec(small, concentrate={"codes": ["333330", "444440"], "share": 0.6}), TABLE, seed=1)
    assert credit_of(split) == [133_333_333, 266_666_667, 257_142_858, 342_857_143]
    info = split.markets["KOSPI"]
    assert info["concentrate_krw"] == 600_000_001 and info["concentrate_held"] == \
        pytest.approx(0.6)
    assert split.names.rule.tolist() == ["weight", "weight", "concentrate", "concentrate"]


def test_a_credit_ratio_fixes_a_name_and_the_rest_is_spread(small):
    # 111110: 1% of 1,000,000 shares x 10,000 won = 100,000,000. The rest, 900,000,001,
    # split 2:3:4 = 200,000,000.22, 300,000,000.33, 400,000,000.44: the won to 444440
    _, split = synthesize_market_population(spec(small, credit_ratio={"111110": 0.01}),
                                            TABLE, seed=1)
    assert credit_of(split) == [100_000_000, 200_000_000, 300_000_000, 400_000_001]
    assert split.names.rule.tolist()[0] == "credit_ratio"
    # ratios for every name give the shape, the market's balance the level: 1:2:3:4 again
    ratios = {c: 0.01 * (k + 1) for k, c in enumerate(CODES)}
    _, split = synthesize_market_population(spec(small, credit_ratio=ratios), TABLE, seed=1)
    assert credit_of(split) == [100_000_000, 200_000_000, 300_000_000, 400_000_001]
    # 1e8 + 2e8 + 3e8 + 4e8 won of ratios against 1,000,000,001 of balance
    assert split.markets["KOSPI"]["credit_ratio_scale"] == pytest.approx(1 + 1e-9)


@pytest.mark.parametrize("weight", ["market_cap", "equal"])
def test_other_weights_and_ties_to_the_earlier_code(small, weight):
    # four caps of 1,000,000 x 10,000 won (or equal weights): 250,000,000.25 each; the won
    # left goes to the earliest of the tied remainders
    _, split = synthesize_market_population(spec(small, weight=weight), TABLE, seed=1)
    assert credit_of(split) == [250_000_001, 250_000_000, 250_000_000, 250_000_000]


def test_a_market_cap_the_table_does_not_give_is_named(small):
    table = InstrumentTable([Instrument(k + 1, c, venue="XKRX") for k, c in enumerate(CODES)])
    with pytest.raises(ValueError, match=r"\[market\]: credit_ratio = .*the market cap of "
                                         r"111110 is not known"):
        synthesize_market_population(spec(small, credit_ratio={"111110": 0.01}), table, seed=1)
    with pytest.raises(ValueError, match=r"weight = 'market_cap': .*111110 is not known"):
        synthesize_market_population(spec(small, weight="market_cap"), table, seed=1)


def test_codes_pick_the_names(small):
    # 1,000,000,001 split 1:2 = 333,333,333.67 and 666,666,667.33: the won to 111110
    pop, split = synthesize_market_population(spec(small, codes=["111110", "222220"]), TABLE,
                                              seed=1)
    assert split.names.code.tolist() == ["111110", "222220"]
    assert split.names.credit_krw.tolist() == [333_333_334, 666_666_667]
    assert set(pop.pos_instrument) == {1, 2}


def test_credit_ratios_from_a_csv(small, tmp_path):
    path = tmp_path / "ratios.csv"
    path.write_text("code,credit_ratio\n111110,0.01\n", encoding="utf-8")
    _, split = synthesize_market_population(spec(small, credit_ratio=str(path)), TABLE, seed=1)
    assert credit_of(split)[0] == 100_000_000


def test_misu_and_cfd_follow_the_credit(small):
    # 미수 10% of the credit: 100,000,000, laid 1:2:3:4 like it; CFD 4,000 won split 1:2:3:4
    pop, split = synthesize_market_population(
        spec(small, misu_share=0.1, cfd_balance_krw=4_000), TABLE, seed=1)
    assert split.names.misu_krw.tolist() == [10_000_000, 20_000_000, 30_000_000, 40_000_000]
    assert split.names.cfd_krw.tolist() == [400, 800, 1_200, 1_600]
    kinds = split.summary()["accounts"]["by_kind"]
    assert set(kinds) == {"credit", "misu", "cfd"}
    assert sum(k["accounts"] for k in kinds.values()) == len(pop)


def test_the_shipped_bars_conserve_each_markets_balance():
    """The KOFIA file's KOSPI balance on 2024-08-02 and a KOSDAQ balance given as a number,
    laid on the 33 large caps: each market's names sum to its balance to the won."""
    codes = sorted(read_bars(LARGECAPS).code.unique())
    table = InstrumentTable([Instrument(k + 1, c, venue="XKRX") for k, c in enumerate(codes)])
    kofia = read_credit_balance(CREDIT)
    kospi = int(kofia.loc[kofia.date == "2024-08-02", "kospi"].iat[0])
    pop, split = synthesize_market_population({
        "bars": str(LARGECAPS), "loan_term_days": 5,
        "market": {"as_of": "2024-08-02", "accounts": 5_000, "credit_file": str(CREDIT),
                   "kosdaq_credit_balance_krw": 8e12, "default_market": "KOSPI",
                   "markets": {"KOSDAQ": ["247540", "086520"]}, "misu_share": 0.03}},
        table, seed=3)
    names = split.names
    assert kospi == 31_203_536_000_000
    assert names[names.market == "KOSPI"].credit_krw.sum() == kospi
    assert names[names.market == "KOSDAQ"].credit_krw.sum() == 8_000_000_000_000
    assert names[names.market == "KOSDAQ"].code.tolist() == ["086520", "247540"]
    assert names.misu_krw.sum() == round(0.03 * kospi) + round(0.03 * 8e12)
    assert split.markets["KOSPI"]["credit_source"].endswith("on 2024-08-02")
    # every name of the bars holds accounts, and the loans drawn are the balances within one
    # share's price per account (the per-name method)
    assert (names.positions > 0).all()
    assert set(pop.pos_instrument) == set(range(1, 34))
    assert abs(int(pop.loan.sum()) - int(names[["credit_krw", "misu_krw"]].to_numpy().sum())) \
        <= int(pop.pos_entry.sum())


def test_the_same_total_concentrated_or_spread_is_one_switch():
    codes = sorted(read_bars(LARGECAPS).code.unique())
    table = InstrumentTable([Instrument(k + 1, c, venue="XKRX") for k, c in enumerate(codes)])
    semis = ["005930", "000660"]

    def run(share):
        concentrate = {"codes": semis} if share is None else {"codes": semis, "share": share}
        return synthesize_market_population({
            "bars": str(LARGECAPS), "loan_term_days": 5,
            "market": {"as_of": "2024-08-02", "accounts": 20_000, "credit_file": str(CREDIT),
                       "default_market": "KOSPI", "concentrate": concentrate,
                       "names_not_in_table": "error"}}, table, seed=3)

    spread_pop, spread = run(None)
    dense_pop, dense = run(0.6)
    # the same balance either way
    assert spread.names.credit_krw.sum() == dense.names.credit_krw.sum() == 31_203_536_000_000
    # spread: the group holds its turnover share over the five days of the term
    bars = read_bars(LARGECAPS)
    bars = bars[(bars.date >= "2024-07-29") & (bars.date <= "2024-08-02")]
    turnover = (bars.close * bars.volume).groupby(bars.code).sum()
    natural = turnover[semis].sum() / turnover.sum()
    assert spread.markets["KOSPI"]["concentrate_held"] == pytest.approx(natural, abs=1e-9)
    assert dense.markets["KOSPI"]["concentrate_held"] == pytest.approx(0.6, abs=1e-12)
    assert 0.3 < natural < 0.55  # the switch moves the group's credit
    # and the accounts drawn follow: the loans on the two names
    on_semis = {"spread": spread_pop, "dense": dense_pop}
    share = {k: p.loan[np.isin(p.pos_instrument, [7, 2])].sum() / p.loan.sum()
             for k, p in on_semis.items()}
    assert share["dense"] == pytest.approx(0.6, abs=0.01)
    assert share["spread"] == pytest.approx(natural, abs=0.01)


def test_portfolio_accounts_hold_several_names_at_the_stated_share(small):
    pop, split = synthesize_market_population(
        spec(small, accounts=10_000, portfolio_share=0.25, portfolio_names=3), TABLE, seed=5)
    held = np.bincount(pop.pos_account, minlength=len(pop))
    # 10,000 accounts: 2,500 portfolio accounts of 3 names, 7,500 of one
    assert len(pop) == 10_000 and (held == 3).sum() == 2_500 and (held == 1).sum() == 7_500
    assert split.summary()["accounts"]["portfolio_share"] == 0.25
    # three different names in each
    for a in np.flatnonzero(held == 3)[:200]:
        assert len(set(pop.pos_instrument[pop.pos_account == a])) == 3
    # 2,500 x 3 + 7,500 = 15,000 positions, split as the balance 1:2:3:4
    counts = np.bincount(pop.pos_instrument, minlength=5)[1:]
    assert counts.tolist() == [1_500, 3_000, 4_500, 6_000]
    # the same spec and seed give the same accounts
    again, _ = synthesize_market_population(
        spec(small, accounts=10_000, portfolio_share=0.25, portfolio_names=3), TABLE, seed=5)
    assert all(np.array_equal(getattr(pop, f), getattr(again, f)) for f in
               ("account_id", "kind", "loan", "pos_account", "pos_instrument", "pos_shares",
                "pos_entry", "pos_trade_date"))
    # portfolio_share defaults to 0: every account holds one name
    single, _ = synthesize_market_population(spec(small), TABLE, seed=5)
    assert single.positions == len(single)


def test_portfolio_names_are_drawn_in_proportion_capped_at_every_account():
    # draws 6, 3, 1 of three names; 4 accounts of 2 names need 8: 0.8 x (6, 3, 1) = 4.8,
    # 2.4, 0.8 -> the first name is capped at 4 (in every account), the other 4 places go
    # 3:1 to the others
    label = _portfolio_groups(np.array([6, 3, 1]), 4, 2, np.random.default_rng(0))
    name = np.repeat([0, 1, 2], [6, 3, 1])
    groups = [sorted(name[label == g]) for g in range(4)]
    assert all(g[0] == 0 and len(set(g)) == 2 for g in groups)
    assert sorted(g[1] for g in groups) == [1, 1, 1, 2]
    assert sorted(label[label >= 4]) == [4, 5]  # the 2 draws left single


def test_merge_accounts_sums_loans_and_keeps_positions():
    pop = Population(account_id=[0, 1, 2], kind=[0, 0, 0], cash=[0, 5, 0],
                     loan=[100, 200, 300], pos_account=[0, 1, 2], pos_instrument=[1, 2, 1],
                     pos_shares=[1, 2, 3], pos_entry=[10, 20, 30], pos_trade_date=[1, 2, 3])
    merged = merge_accounts(pop, np.array([7, 7, 3]))
    assert merged.account_id.tolist() == [3, 7] and merged.loan.tolist() == [300, 300]
    assert merged.cash.tolist() == [0, 5]
    assert merged.pos_account.tolist() == [0, 1, 1] and merged.pos_instrument.tolist() == \
        [1, 1, 2]
    with pytest.raises(ValueError, match="instrument 1 twice"):
        merge_accounts(pop, np.array([7, 8, 7]))


# -- generations across names ----------------------------------------------------------

A, B = 1, 2


def two_name_tape() -> Events:
    """Prints at 10,000 in A and B; A's bids 100 each at 10,000 .. 9,700 and 500 at 9,600,
    B's 60 at 10,000 and 100 at 9,900."""
    rows = [(1, A, TRADE, ASK, 10_000, 1, 0), (1, B, TRADE, ASK, 10_000, 1, 0)]
    for k, (px, sz) in enumerate([(10_000, 100), (9_900, 100), (9_800, 100), (9_700, 100),
                                  (9_600, 500)]):
        rows.append((2, A, ADD, BID, px, sz, k + 1))
    rows.append((2, A, ADD, ASK, 10_100, 100, 99))
    rows += [(2, B, ADD, BID, 10_000, 60, 200), (2, B, ADD, BID, 9_900, 100, 201),
             (2, B, ADD, ASK, 10_100, 100, 299)]
    cols = ["ts", "instrument", "action", "side", "price", "size", "order_id"]
    ev = {c: np.array([r[i] for r in rows], np.int64) for i, c in enumerate(cols)}
    ev["flags"] = np.full(len(rows), F_LAST)
    return Events.from_columns(ev)


def test_a_portfolio_account_broken_in_a_sells_b_one_generation_on():
    # instant rules (140% on every trade). Two single-name accounts in A, triggers 9,950 and
    # 9,850 (tests/test_broker_cascade.py), and account 201 holding 100 A and 100 B with a
    # loan of 1,410,750: it breaches when 100 P_A + 100 x 10,000 < 1.4 x 1,410,750 =
    # 1,975,050, i.e. P_A < 9,750.5 (at 9,800 its ratio is 1,980,000 / 1,410,750 = 1.4035).
    pop = Population(account_id=[101, 102, 201], kind=[3, 3, 3], cash=[0, 0, 0],
                     loan=[426_450, 703_607, 1_410_750], pos_account=[0, 1, 2, 2],
                     pos_instrument=[A, A, A, B], pos_shares=[60, 100, 100, 100],
                     pos_entry=[10_000] * 4, pos_trade_date=[19_723] * 4)
    rp = Replay(InstrumentTable([Instrument(A, "A", tick_units=100),
                                 Instrument(B, "B", tick_units=100)]))
    broker = Broker(load_rules("instant"), pop).attach(rp)
    sell = InjectedOrders(np.array([3]), np.array([A]), np.array([ASK]), np.array([MARKET]),
                          np.array([0]), np.array([150]))
    rp.run([two_name_tape()], sell)
    f = broker.forced_orders()
    # the exogenous sell leaves A at 9,900: 101 sells (generation 0), to 9,800; 102 is
    # breached by that generation-0 print: generation 1, to 9,700; 201 is breached there by
    # a generation-1 sale: generation 2 for its sale of A and for its sale of B
    assert list(zip(f.account_id, f.instrument, f.generation, strict=True)) == [
        (101, A, 0), (102, A, 1), (201, A, 2), (201, B, 2)]
    assert f.filled_qty.tolist() == [60, 100, 100, 100]
    # B's last print was made by that generation-2 sale
    assert rp.book.column("last_generation")[B] == 3


FRI, MON, TUE = date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9)


def krx_tape(rows) -> Events:
    """(day, time, instrument, side, price, size) adds, one order id each."""
    cols = {c: [] for c in ("ts", "instrument", "action", "side", "price", "size",
                            "order_id", "flags")}
    for k, (day, at, inst, side, px, sz) in enumerate(sorted(rows, key=lambda r: r[:3])):
        for c, v in zip(cols, (seoul_ns(day, at), inst, ADD, side, px, sz, k + 1, F_LAST),
                        strict=True):
            cols[c].append(v)
    return Events.from_columns({c: np.array(v, np.int64) for c, v in cols.items()})


def test_at_the_close_a_portfolio_account_broken_in_a_sells_b_one_generation_on():
    # krx-credit, grace_days 0: breached at a close, sold in the next pre-open auction.
    # Friday: A closes 9,700, B 10,000. Account 7 (100 A, loan 700,000): 970,000 / 700,000
    # = 1.386 < 1.40 -> sold Monday at the open (generation 0): 3 shares, which Monday's
    # opening uncross fills against a 9,000 bid; A trades no more that day, so its close is
    # that generation-0 print. Account 8 (100 A + 100 B, loan 1,380,000): Friday 1,970,000 /
    # 1,380,000 = 1.4275, Monday 100 x 9,000 + 100 x 10,000 = 1,900,000 -> 1.3768: breached
    # by A's close, so its Tuesday sales of A and of B are generation 1.
    rows = [(FRI, t(8, 40), A, BID, 10_000, 100), (FRI, t(8, 40), A, ASK, 10_000, 100),
            (FRI, t(15, 25), A, BID, 9_700, 50), (FRI, t(15, 25), A, ASK, 9_700, 50),
            (FRI, t(8, 40), B, BID, 10_000, 100), (FRI, t(8, 40), B, ASK, 10_000, 100),
            (MON, t(8, 40), A, BID, 9_000, 3),
            (MON, t(8, 40), B, BID, 10_000, 10), (MON, t(8, 40), B, ASK, 10_000, 10),
            (TUE, t(8, 40), A, BID, 8_000, 1000), (TUE, t(8, 40), B, BID, 9_900, 1000)]
    table = InstrumentTable([Instrument(i, n, venue="XKRX", prev_close_units=10_000,
                                        market="KOSPI") for i, n in ((A, "A"), (B, "B"))])
    epoch = (FRI - date(1970, 1, 1)).days
    pop = Population(account_id=[7, 8], kind=[0, 0], cash=[0, 0], loan=[700_000, 1_380_000],
                     pos_account=[0, 1, 1], pos_instrument=[A, A, B],
                     pos_shares=[100, 100, 100], pos_entry=[10_000] * 3,
                     pos_trade_date=[epoch] * 3)
    rp = Replay(table, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit", ["grace_days=0"]), pop).attach(rp)
    rp.run([krx_tape(rows)])
    f = broker.forced_orders()
    assert list(zip(f.account_id, f.instrument, f.generation, f.filled_qty, strict=True)) == [
        (7, A, 0, 3), (7, A, 1, 20), (8, A, 1, 5), (8, B, 1, 5)]
    assert f.ts.iloc[0] == seoul_ns(MON, t(8, 30)) and (f.ts.iloc[1:] == seoul_ns(
        TUE, t(8, 30))).all()
    monday = broker.snapshots[1].set_index("account_id")
    assert monday.loc[8, "value"] == 1_900_000 and monday.loc[7, "value"] == 97 * 9_000


# -- bad specs ----------------------------------------------------------------------------

def write_spec(tmp_path: Path, bars: Path, body: str) -> Path:
    path = tmp_path / "market.toml"
    path.write_text(f'bars = "{bars.name}"\nloan_term_days = 2\n' + body, encoding="utf-8")
    return path


GOOD = 'as_of = "2024-08-02"\naccounts = 100\nkospi_credit_balance_krw = 1e9\n' \
    'default_market = "KOSPI"\n'


@pytest.mark.parametrize("extra, key, reason", [
    ("portfolio_share = 1.5\n", "portfolio_share = 1.5", "a share in [0, 1]"),
    ("portfolio_share = 1\n", "portfolio_share = 1", "must be < 1"),
    ("portfolio_names = 1\n", "portfolio_names = 1", "[2, 10]"),
    ('weight = "volume"\n', "weight = 'volume'", "turnover, market_cap, equal"),
    ('concentrate = { codes = ["333330"], share = 1.2 }\n', "concentrate =", "share must be"),
    ('concentrate = { codes = ["999990"], share = 0.5 }\n', "concentrate =",
     "999990 is not in the bars"),
    ('concentrate = { codes = ["333330", "333330"] }\n', "concentrate =", "twice"),
    ('concentrate = { share = 0.5 }\n', "concentrate =", "must be a table"),
    ('credit_ratio = { "111110" = 2 }\n', "credit_ratio =", "fraction in (0, 1)"),
    ('credit_ratio = { "111110" = 0.5 }\n', "credit_ratio =", "above KOSPI's balance"),
    ('concentrate = { codes = ["111110"] }\ncredit_ratio = { "111110" = 0.001 }\n',
     "concentrate =", "has a credit_ratio too"),
    ("misu_share = 0.1\nmisu_balance_krw = 5e8\n", "[market]", "one of misu_balance_krw"),
    ("misu_share = -0.1\n", "misu_share = -0.1", "[0, 1]"),
    ("cfd_balance_krw = 2e15\n", "cfd_balance_krw = 2000000000000000.0", "[0, 10^15]"),
    ("misu_loan_term_days = 0\n", "misu_loan_term_days = 0", "[1, 3650]"),
    ("cfd_margin_rate = [0.6, 0.4]\n", "cfd_margin_rate = [0.6, 0.4]", "low <= high"),
    ("kosdaq_credit_balance_krw = 5e8\n", "kosdaq_credit_balance_krw = 500000000.0",
     "no name of the bars is in KOSDAQ"),
    ('markets = { KOSDAQ = ["111110"] }\n', "kosdaq_credit_balance_krw",
     "1 names are in KOSDAQ but it has no balance"),
    ('markets = { NYSE = ["111110"] }\n', "markets =", "must be a table"),
    ('default_market = "NYSE"\n', "default_market = 'NYSE'", "KOSPI, KOSDAQ"),
    ('codes = ["111110", "777770"]\n', "codes =", "777770 is not in the bars"),
    ('codes = ["111110", "222220"]\nconcentrate = { codes = ["333330"] }\n', "concentrate =",
     "333330 is not one of codes"),
    ('names_not_in_table = "drop"\n', "names_not_in_table = 'drop'", '"error" or "leave"'),
    ("colour = 1\n", "[market]: unknown key 'colour'", "valid keys"),
])
def test_a_bad_market_key_names_the_file_and_key(small, tmp_path, extra, key, reason):
    keys = {line.split("=")[0].strip() for line in extra.splitlines()}
    good = "".join(line + "\n" for line in GOOD.splitlines()
                   if line.split("=")[0].strip() not in keys)
    path = write_spec(tmp_path, small, "[market]\n" + good + extra)
    with pytest.raises(ValueError) as err:
        synthesize_population(path, TABLE, seed=1)
    message = str(err.value)
    assert message.startswith(str(path)) and key in message and reason in message, message


@pytest.mark.parametrize("body, fragment", [
    ('instrument = "111110"\n[market]\n' + GOOD, "instrument = '111110': a spec with [market]"),
    ("[market]\naccounts = 100\nkospi_credit_balance_krw = 1e9\n",
     "[market]: missing key 'as_of'"),
    ('[market]\nas_of = "2024-08-02"\naccounts = 0\nkospi_credit_balance_krw = 1e9\n',
     "[market]: accounts = 0: must be an integer in [1, 10,000,000]"),
    ('[market]\nas_of = "2024-08-02"\naccounts = 10\n', "give credit_file"),
    ('[market]\nas_of = "2024-08-02"\naccounts = 10\nkospi_credit_balance_krw = -5\n',
     "kospi_credit_balance_krw = -5: must be a number of won in [1, 10^15]"),
])
def test_a_bad_spec_around_the_market_names_the_file(small, tmp_path, body, fragment):
    path = write_spec(tmp_path, small, body)
    with pytest.raises(ValueError) as err:
        synthesize_population(path, TABLE, seed=1)
    assert str(err.value).startswith(str(path)) and fragment in str(err.value), str(err.value)


def test_a_day_missing_from_the_credit_file_is_named(small, tmp_path):
    path = write_spec(tmp_path, small, f'[market]\nas_of = "2024-08-03"\naccounts = 10\n'
                                       f'credit_file = "{CREDIT}"\n')
    with pytest.raises(ValueError, match=r"as_of = '2024-08-03': .*kospi-index-credit-balance"
                                         r"-daily.csv has no balance on 2024-08-03 \(nearest: "
                                         r"2024-08-02, 2024-08-05\)"):
        synthesize_population(path, TABLE, seed=1)


def test_a_market_listed_against_the_instrument_table_is_an_error(small):
    table = InstrumentTable([Instrument(k + 1, c, venue="XKRX", market="KOSPI")
                             for k, c in enumerate(CODES)])
    with pytest.raises(ValueError, match="markets = .*lists 111110 in KOSDAQ, but the "
                                         "instrument table or the bars say KOSPI"):
        synthesize_market_population(spec(small, markets={"KOSDAQ": ["111110"]}), table,
                                     seed=1)


def test_names_not_in_the_instrument_table_are_an_error_or_left_out_and_counted(small):
    table = InstrumentTable([Instrument(1, "111110", venue="XKRX")])
    with pytest.raises(ValueError, match=r"3 names of the bars that hold a balance are not in "
                                         r"the instrument table \(222220, ...\)"):
        synthesize_market_population(spec(small), table, seed=1)
    pop, split = synthesize_market_population(spec(small, names_not_in_table="leave"), table,
                                              seed=1)
    # the split is the whole market's; only 111110's tenth is drawn, the rest is counted
    assert split.names.credit_krw.sum() == 1_000_000_001
    assert split.markets["KOSPI"]["left_out_krw"] == 900_000_001
    assert split.markets["KOSPI"]["left_out_names"] == 3
    assert set(pop.pos_instrument) == {1}
