"""Account populations: loaded from a CSV (rejecting bad rows by file, row and field) or
synthesised from daily bars and a credit balance, seeded."""

import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

import brokers
from brokers.population import KIND_CODES, Population, split_by_kind
from brokers.synthetic_population import DailyBars, PopulationSpec, synthesize
from replay.loaders.daily_bars import read_daily_bars
from replay.loaders.population import load_population_csv, synthesize_population
from replay.quality import TapeError
from replay.tape import Instrument, InstrumentTable

EXAMPLES = Path(brokers.__file__).parent / "examples"
SPEC = EXAMPLES / "credit-population.toml"
BARS = EXAMPLES / "synthetic-bars.csv"
HEADER = "account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
FIRST = "7,credit,005930,10,71000,0,500000,2024-03-04\n"

TABLE = InstrumentTable([
    Instrument(1, "005930", venue="XKRX", shares_outstanding=5_969_782_550),
    Instrument(2, "000660", venue="XKRX"),
    Instrument(3, "BTCUSDT", venue="binance", price_decimals=2, size_decimals=3),
])
SMALL = InstrumentTable([Instrument(9, "SYNTH-SMALL", venue="XKRX",
                                    shares_outstanding=20_000_000)])


def day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_a_portfolio_account_loads_as_one_account_with_several_positions(tmp_path):
    path = write(tmp_path, FIRST
                 + "7,,000660,5,180500,,,2024-03-05\n"
                   "8,misu,005930,3,70000,1000,42000,2024-03-06\n"
                   "7,credit,BTCUSDT,0.5,100.25,0,500000,2024-03-07\n"
                   "\n")  # a trailing blank line is not a row
    pop = load_population_csv(path, TABLE)
    assert len(pop) == 2 and pop.positions == 4
    assert pop.account_id.tolist() == [7, 8]
    assert pop.kind.tolist() == [KIND_CODES["credit"], KIND_CODES["misu"]]
    assert pop.kind.dtype == np.int8
    assert pop.cash.tolist() == [0, 1000] and pop.loan.tolist() == [500_000, 42_000]
    # positions grouped by account, file order within an account
    assert pop.pos_account.tolist() == [0, 0, 0, 1]
    assert pop.pos_instrument.tolist() == [1, 2, 3, 1]
    assert pop.pos_shares.tolist() == [10, 5, 500, 3]  # BTCUSDT: 3 size decimals
    assert pop.pos_entry.tolist() == [71000, 180500, 10025, 70000]  # 2 price decimals
    assert pop.pos_trade_date.tolist() == [day("2024-03-04"), day("2024-03-05"),
                                           day("2024-03-07"), day("2024-03-06")]
    for name in ("account_id", "cash", "loan", "pos_account", "pos_instrument", "pos_shares",
                 "pos_entry", "pos_trade_date"):
        assert getattr(pop, name).dtype == np.int64
    frame = pop.to_frame()
    assert len(frame) == 4 and frame["kind"].tolist() == ["credit"] * 3 + ["misu"]
    assert frame["trade_date"].iloc[0] == pd.Timestamp("2024-03-04")


def test_a_header_only_csv_is_an_empty_population(tmp_path):
    pop = load_population_csv(write(tmp_path, ""), TABLE)
    assert len(pop) == 0 and pop.positions == 0


@pytest.mark.parametrize("row, field, reason", [
    ("9,margin,005930,1,100,0,0,2024-01-02", "kind", "unknown kind 'margin'"),
    ("9,,005930,1,100,0,0,2024-01-02", "kind", "empty on the account's first row"),
    ("7,misu,000660,1,100,0,500000,2024-01-02", "kind", "misu differs from credit"),
    ("9,credit,XXXX,1,100,0,0,2024-01-02", "instrument", "unknown symbol 'XXXX'"),
    ("9,credit,005930,0,100,0,0,2024-01-02", "shares", "must be > 0"),
    ("9,credit,005930,-5,100,0,0,2024-01-02", "shares", "must be > 0"),
    ("9,credit,005930,1.5,100,0,0,2024-01-02", "shares", "more than 0 decimals"),
    ("9,credit,005930,1,0,0,0,2024-01-02", "entry_price", "must be > 0"),
    ("9,credit,005930,1,-100,0,0,2024-01-02", "entry_price", "must be > 0"),
    ("9,credit,005930,1,abc,0,0,2024-01-02", "entry_price", "not a decimal number"),
    ("9,credit,005930,1,100,-1,0,2024-01-02", "cash", "negative"),
    ("9,credit,005930,1,100,0,-1,2024-01-02", "loan", "negative"),
    ("9,credit,005930,1,100,0,1e6,2024-01-02", "loan", "not an integer"),
    ("9,credit,005930,1,100,,0,2024-01-02", "cash", "empty on the account's first row"),
    ("7,,000660,1,100,5,,2024-01-02", "cash", "5 differs from 0"),
    ("7,,000660,1,100,,1,2024-01-02", "loan", "1 differs from 500,000"),
    ("9,credit,005930,1,100,0,0,2024-02-30", "trade_date", "not a date"),
    ("9,credit,005930,1,100,0,0,20240102", "trade_date", "not a date"),
    ("9,credit,005930,1,100,0,0,", "trade_date", "not a date"),
    ("7,,005930,1,100,,,2024-01-02", "instrument", "holds '005930' on an earlier row"),
    ("x9,credit,005930,1,100,0,0,2024-01-02", "account_id", "not an integer"),
])
def test_each_invalid_row_is_rejected_with_its_row_and_field(tmp_path, row, field, reason):
    # the bad row is line 4: header, a good account, a good row, then the bad one
    path = write(tmp_path, FIRST + "8,misu,005930,3,70000,0,0,2024-03-06\n" + row + "\n"
                 + "10,credit,005930,1,100,0,0,2024-01-02\n")
    with pytest.raises(TapeError) as info:
        load_population_csv(path, TABLE)
    err = info.value
    assert (err.file, err.row, err.field) == (str(path), 4, field), str(err)
    assert reason in err.reason


def test_the_first_bad_row_is_reported_when_several_are_bad(tmp_path):
    path = write(tmp_path, FIRST + "9,credit,005930,1,100,0,0,2024-13-01\n"
                 + "10,margin,XXXX,0,0,-1,-1,bad\n")
    with pytest.raises(TapeError) as info:
        load_population_csv(path, TABLE)
    assert (info.value.row, info.value.field) == (3, "trade_date")


def test_a_blank_line_inside_the_file_is_a_bad_row_with_its_line_number(tmp_path):
    path = write(tmp_path, FIRST + "\n" + "9,credit,005930,1,100,0,0,2024-01-02\n")
    with pytest.raises(TapeError) as info:
        load_population_csv(path, TABLE)
    assert (info.value.row, info.value.field) == (3, "account_id")


def test_a_row_with_too_few_fields_is_rejected_with_its_line(tmp_path):
    path = write(tmp_path, FIRST + "9,credit,005930,1,100,0,0\n")
    with pytest.raises(TapeError) as info:
        load_population_csv(path, TABLE)
    assert info.value.row == 3


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,kind,instrument,shares,entry_price,cash,trade_date\n")
    with pytest.raises(TapeError) as info:
        load_population_csv(path, TABLE)
    assert (info.value.row, info.value.field) == (1, "loan")


def test_a_million_row_csv_loads(tmp_path):
    n = 1_000_000
    rng = np.random.default_rng(0)
    account = np.arange(n) // 2  # 500,000 portfolio accounts of two names each
    first = np.arange(n) % 2 == 0
    money = rng.integers(0, 10**8, n // 2).repeat(2)
    kinds = np.array(["credit", "misu", "cfd", "instant"])[rng.integers(0, 4, n // 2)]
    on_first = pa.array(first)
    table = pa.table({
        "account_id": account,
        "kind": pc.if_else(on_first, pa.array(kinds.repeat(2)), ""),
        "instrument": pc.if_else(on_first, "005930", "000660"),
        "shares": rng.integers(1, 10_000, n),
        "entry_price": rng.integers(1_000, 200_000, n),
        "cash": pc.if_else(on_first, pc.cast(pa.array(money), pa.string()), ""),
        "loan": money,
        "trade_date": pa.array(np.datetime64("2024-01-02") + rng.integers(0, 90, n)),
    })
    path = tmp_path / "million.csv"
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
    started = time.perf_counter()
    pop = load_population_csv(path, TABLE)
    print(f"loaded {n:,} rows in {time.perf_counter() - started:.2f}s")  # not asserted
    assert len(pop) == n // 2 and pop.positions == n
    assert pop.account_id[:3].tolist() == [0, 1, 2]
    expected_kind = np.select([kinds == k for k in KIND_CODES], list(KIND_CODES.values()))
    assert np.array_equal(pop.kind, expected_kind)
    assert np.array_equal(pop.cash, money[::2])
    assert np.array_equal(pop.pos_shares, table.column("shares").to_numpy())
    assert np.array_equal(np.bincount(pop.pos_instrument), [0, n // 2, n // 2])


# --------------------------------------------------------------------------------------
# Synthetic populations


def bars_frame() -> pd.DataFrame:
    frame = pd.read_csv(BARS)
    frame["day"] = pd.to_datetime(frame["Date"]).to_numpy().astype("datetime64[D]").astype(
        np.int64)
    return frame


def spec(**changes) -> dict:
    with SPEC.open("rb") as fh:
        data = tomllib.load(fh)
    data["bars"] = str(BARS)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_same_spec_and_seed_give_the_same_population():
    a = synthesize_population(SPEC, SMALL, seed=3)
    b = synthesize_population(SPEC, SMALL, seed=3)
    for name in Population.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    c = synthesize_population(SPEC, SMALL, seed=4)
    assert not np.array_equal(a.loan, c.loan)
    assert not np.array_equal(a.pos_trade_date, c.pos_trade_date)


def test_the_example_spec_makes_its_accounts_and_kind_mix():
    pop = synthesize_population(SPEC, SMALL, seed=0)
    assert len(pop) == 10_000 and pop.positions == 10_000
    assert np.bincount(pop.kind, minlength=4).tolist() == [7_000, 3_000, 0, 0]
    assert (pop.cash == 0).all() and (pop.pos_shares >= 1).all()
    assert (pop.pos_instrument == 9).all()


def test_loans_sum_to_the_credit_balance_within_one_share_per_account():
    pop = synthesize_population(SPEC, SMALL, seed=1)
    # one share x price per account (plus half a won of rounding per loan)
    tolerance = pop.pos_entry.sum() + len(pop)
    assert abs(int(pop.loan.sum()) - 5e9) <= tolerance
    assert tolerance < 0.02 * 5e9  # and that is a tight bound here


def test_loans_follow_the_down_payment_range():
    pop = synthesize_population(SPEC, SMALL, seed=2)
    financed = pop.loan / (pop.pos_shares * pop.pos_entry)
    # margin_rate = [0.4, 0.6] (krx.md:77 "Down payment 40-60%"): 40-60% financed
    assert financed.min() >= 0.4 - 1e-6 and financed.max() <= 0.6 + 1e-6
    assert financed.max() - financed.min() > 0.15


def test_entries_are_bar_dates_within_the_loan_term_at_that_days_close():
    bars = bars_frame()
    pop = synthesize_population(spec(as_of="2023-11-30", loan_term_days=90), SMALL, seed=5)
    as_of = day("2023-11-30")
    # loan_term_days = 90 (krx.md:77 "term 90 days"), calendar days up to as_of
    assert pop.pos_trade_date.max() <= as_of
    assert pop.pos_trade_date.min() > as_of - 90
    close = dict(zip(bars["day"], bars["Close"], strict=True))
    assert set(pop.pos_trade_date.tolist()) <= set(close)
    assert all(close[d] == e for d, e in zip(pop.pos_trade_date.tolist(),
                                              pop.pos_entry.tolist(), strict=True))


def test_entry_dates_are_drawn_in_proportion_to_volume():
    bars = bars_frame()
    pop = synthesize_population(spec(accounts=200_000, loan_term_days=90), SMALL, seed=6)
    window = bars[bars["day"] > bars["day"].iloc[-1] - 90]
    expected = window["Volume"].to_numpy() / window["Volume"].sum() * len(pop)
    counts = pd.Series(pop.pos_trade_date).value_counts().reindex(window["day"], fill_value=0)
    z = (counts.to_numpy() - expected) / np.sqrt(expected)
    assert np.abs(z).max() < 6  # binomial counts: a generous tolerance
    assert np.corrcoef(counts.to_numpy(), expected)[0, 1] > 0.98


def test_credit_balance_as_percent_of_shares_uses_shares_outstanding():
    pop = synthesize_population(spec(credit_balance_krw=None, credit_balance_pct_shares=2.5),
                                SMALL, seed=7)
    last_close = bars_frame()["Close"].iloc[-1]
    balance = 0.025 * 20_000_000 * last_close
    assert abs(int(pop.loan.sum()) - balance) <= pop.pos_entry.sum() + len(pop)
    no_shares = InstrumentTable([Instrument(9, "SYNTH-SMALL")])
    with pytest.raises(ValueError, match="credit_balance_pct_shares.*shares_outstanding"):
        synthesize_population(spec(credit_balance_krw=None, credit_balance_pct_shares=2.5),
                              no_shares, seed=7)


def test_a_single_kind_and_a_fixed_margin_rate():
    pop = synthesize_population(spec(kinds=None, kind="cfd", margin_rate=0.4), SMALL, seed=8)
    assert (pop.kind == KIND_CODES["cfd"]).all()
    financed = pop.loan / (pop.pos_shares * pop.pos_entry)
    assert np.allclose(financed, 0.6, atol=1e-3)


def test_pykrx_korean_headers_are_read(tmp_path):
    frame = pd.read_csv(BARS).rename(columns={"Date": "날짜", "Open": "시가", "High": "고가",
                                              "Low": "저가", "Close": "종가",
                                              "Volume": "거래량"})
    path = tmp_path / "pykrx.csv"
    frame.to_csv(path, index=False, encoding="utf-8")
    korean = read_daily_bars(path)
    english = read_daily_bars(BARS)
    assert np.array_equal(korean.date, english.date)
    assert np.array_equal(korean.close, english.close)
    a = synthesize_population(spec(bars=str(path)), SMALL, seed=9)
    b = synthesize_population(spec(), SMALL, seed=9)
    assert np.array_equal(a.loan, b.loan)


def test_bad_bars_name_file_row_and_column(tmp_path):
    lines = BARS.read_text().splitlines()
    fields = lines[5].split(",")
    fields[4] = "-1"
    lines[5] = ",".join(fields)
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TapeError) as info:
        read_daily_bars(path)
    assert (info.value.row, info.value.field) == (6, "Close")
    lines = BARS.read_text().splitlines()
    lines[8], lines[9] = lines[9], lines[8]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TapeError) as info:
        read_daily_bars(path)
    assert (info.value.row, info.value.field) == (10, "Date")


@pytest.mark.parametrize("changes, key", [
    ({"accounts": 0}, "accounts"),
    ({"accounts": 1.5}, "accounts"),
    ({"instrument": "NOPE"}, "instrument"),
    ({"kinds": {"credit": 0.5, "misu": 0.3}}, "kinds"),
    ({"kinds": {"margin": 1.0}}, "kinds"),
    ({"kinds": None, "kind": "margin"}, "kind"),
    ({"margin_rate": [0.6, 0.4]}, "margin_rate"),
    ({"margin_rate": [0.4, 1.0]}, "margin_rate"),
    ({"credit_balance_krw": -1}, "credit_balance_krw"),
    ({"loan_term_days": 0}, "loan_term_days"),
    ({"loan_term_days": 400}, "loan_term_days"),  # longer than the bars
    ({"as_of": "2023-01-01"}, "as_of"),
    ({"as_of": "someday"}, "as_of"),
    ({"bars": 5}, "bars"),
    ({"colour": "red"}, "colour"),
    ({"credit_balance_pct_shares": 2.5}, "credit_balance_pct_shares"),  # both given
    ({"accounts": None}, "accounts"),
])
def test_spec_errors_name_the_key(changes, key):
    with pytest.raises(ValueError, match=key):
        synthesize_population(spec(**changes), SMALL, seed=0)


def test_the_spec_is_checked_before_its_bars_are_read(tmp_path):
    """A bad key is named even when the bars file is missing (the bars were read first, and
    the missing file hid the spec's own error)."""
    missing = str(tmp_path / "nowhere.csv")
    with pytest.raises(ValueError, match="credit_balance_krw = -1: must be a number > 0"):
        synthesize_population(spec(bars=missing, credit_balance_krw=-1), SMALL, seed=0)
    with pytest.raises(FileNotFoundError, match="nowhere.csv: no such daily-bar file"):
        synthesize_population(spec(bars=missing), SMALL, seed=0)


def test_the_method_draws_from_bars_already_in_memory():
    """brokers.synthetic_population reads no file: the same spec over the same bars held in
    arrays gives the population the spec file gives."""
    frame = bars_frame()
    bars = DailyBars(frame["day"].to_numpy(np.int64), frame["Close"].to_numpy(float),
                     frame["Volume"].to_numpy(float))
    checked = PopulationSpec.from_mapping(spec(bars="in memory"), SMALL, "population spec")
    a = synthesize(checked, bars, seed=11)
    b = synthesize_population(SPEC, SMALL, seed=11)
    for name in Population.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_spec_file_resolves_bars_relative_to_itself(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bars.csv").write_bytes(BARS.read_bytes())
    path = tmp_path / "spec.toml"
    path.write_text('bars = "data/bars.csv"\ninstrument = "SYNTH-SMALL"\nkind = "credit"\n'
                    "accounts = 100\ncredit_balance_krw = 1e8\n")
    pop = synthesize_population(path, SMALL, seed=0)
    assert len(pop) == 100 and abs(int(pop.loan.sum()) - 1e8) <= pop.pos_entry.sum() + 100
    path.write_text(path.read_text() + "accountz = 5\n")
    with pytest.raises(ValueError, match=r"spec\.toml: unknown key 'accountz'"):
        synthesize_population(path, SMALL, seed=0)


# --------------------------------------------------------------------------------------
# One file, several kinds


def test_a_mixed_file_splits_into_one_population_per_kind(tmp_path):
    """Portfolio accounts of three kinds, their rows interleaved: each kind's population
    holds its accounts in file order, their positions, and pos_account indexes them anew."""
    path = write(tmp_path, "7,credit,005930,10,71000,0,500000,2024-03-04\n"
                           "8,misu,005930,3,70000,1000,42000,2024-03-06\n"
                           "7,,000660,5,180500,,,2024-03-05\n"
                           "9,cfd,BTCUSDT,0.5,100.25,20,300,2024-03-07\n"
                           "10,credit,000660,2,181000,5,90000,2024-03-01\n"
                           "8,,000660,1,179000,,,2024-03-06\n")
    pop = load_population_csv(path, TABLE)
    parts = split_by_kind(pop)
    assert list(parts) == ["credit", "misu", "cfd"]  # KINDS order; no instant accounts
    credit, misu, cfd = parts["credit"], parts["misu"], parts["cfd"]
    assert credit.account_id.tolist() == [7, 10] and credit.loan.tolist() == [500_000, 90_000]
    assert credit.cash.tolist() == [0, 5]
    assert credit.pos_account.tolist() == [0, 0, 1]
    assert credit.pos_instrument.tolist() == [1, 2, 2]
    assert credit.pos_shares.tolist() == [10, 5, 2]
    assert credit.pos_entry.tolist() == [71000, 180500, 181000]
    assert credit.pos_trade_date.tolist() == [day("2024-03-04"), day("2024-03-05"),
                                              day("2024-03-01")]
    assert misu.account_id.tolist() == [8] and misu.pos_account.tolist() == [0, 0]
    assert misu.pos_instrument.tolist() == [1, 2] and misu.pos_entry.tolist() == [70000, 179000]
    assert cfd.account_id.tolist() == [9] and cfd.pos_shares.tolist() == [500]
    assert cfd.cash.tolist() == [20] and cfd.loan.tolist() == [300]
    for kind, part in parts.items():
        assert (part.kind == KIND_CODES[kind]).all()
    # together they are the file: every position once, with its account's fields
    whole = pop.to_frame()
    for kind, part in parts.items():
        want = whole[whole["kind"] == kind].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.to_frame(), want)
    assert sum(p.positions for p in parts.values()) == pop.positions


def test_a_one_kind_file_splits_into_itself():
    shipped = EXAMPLES / "crash-credit.csv"
    table = InstrumentTable([Instrument(1, "SYNTH-LARGE", venue="XKRX")])
    pop = load_population_csv(shipped, table)
    parts = split_by_kind(pop)
    assert list(parts) == ["credit"]
    for name in Population.__dataclass_fields__:
        assert np.array_equal(getattr(parts["credit"], name), getattr(pop, name)), name


def test_the_example_spec_splits_into_its_credit_and_misu_accounts():
    pop = synthesize_population(SPEC, SMALL, seed=0)
    parts = split_by_kind(pop)
    assert {k: len(p) for k, p in parts.items()} == {"credit": 7_000, "misu": 3_000}
    for kind, part in parts.items():
        mine = pop.kind == KIND_CODES[kind]
        assert np.array_equal(part.account_id, pop.account_id[mine])
        assert np.array_equal(part.loan, pop.loan[mine])
        # single-name accounts: position i is account i's
        assert np.array_equal(part.pos_account, np.arange(len(part)))
        assert np.array_equal(part.pos_shares, pop.pos_shares[mine])


def test_an_empty_population_splits_into_nothing(tmp_path):
    assert split_by_kind(load_population_csv(write(tmp_path, ""), TABLE)) == {}


def test_a_subset_mask_must_have_one_value_per_account(tmp_path):
    pop = load_population_csv(write(tmp_path, FIRST), TABLE)
    with pytest.raises(ValueError, match="one per account"):
        pop.subset(np.ones(2, bool))


# --------------------------------------------------------------------------------------
# brokers/ reads no file format


#: Modules and calls that read an input file. brokers/rules.py loads the preset rules
#: (configuration) and is the one module allowed them.
_READERS = {"csv", "json", "tomllib", "pyarrow.csv", "pyarrow.parquet", "pyarrow.json"}
_READ_CALLS = {"open", "read_csv", "read_text", "read_bytes", "read_table", "read_parquet",
               "read_json"}


def test_no_broker_module_reads_a_file_format():
    """Population files are read in replay/loaders (population.py, daily_bars.py); the
    broker package holds the model and the method (brokers/population.py held a CSV reader,
    a daily-bar reader and a spec reader)."""
    import ast

    package = Path(brokers.__file__).parent
    found = []
    for path in sorted(package.glob("*.py")):
        if path.name == "rules.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names if a.name in _READERS]
            elif isinstance(node, ast.ImportFrom) and node.module in _READERS | {"pyarrow"}:
                names = {f"{node.module}.{a.name}" for a in node.names} | {node.module}
                found += [(path.name, n) for n in sorted(names & _READERS)]
            elif isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name in _READ_CALLS:
                    found.append((path.name, f"{name}()"))
    assert len(list(package.glob("*.py"))) >= 4  # the walk saw the package
    assert found == []


LARGECAPS = Path(__file__).parent / "data" / "daily-2024-08-largecaps-pykrx.csv"
TWO = InstrumentTable([Instrument(0, "005930", venue="XKRX"),
                       Instrument(1, "000660", venue="XKRX")])


def two_names(**shared) -> dict:
    return {"bars": str(LARGECAPS), "kind": "credit", "loan_term_days": 5,
            "as_of": "2024-08-02", **shared,
            "names": [{"instrument": "005930", "accounts": 300, "credit_balance_krw": 3e10},
                      {"instrument": "000660", "accounts": 200, "credit_balance_krw": 2e10}]}


def test_a_spec_of_several_names_draws_each_from_its_own_bars_and_numbers_on():
    pop = synthesize_population(two_names(), TWO, seed=3)
    frame = pop.to_frame()
    by = frame.groupby("instrument_id")
    assert by.account_id.count().tolist() == [300, 200]
    assert by.account_id.min().tolist() == [0, 300] and pop.account_id.max() == 499
    # each name's loans sum to its own balance (within one share per account)
    assert abs(by.loan.sum()[0] - 3e10) < 300 * 90_000
    assert abs(by.loan.sum()[1] - 2e10) < 200 * 210_000
    # entries at each name's own closes (the real pykrx bars, 2024-07-29..08-02)
    bars = pd.read_csv(LARGECAPS, comment="#", dtype={"code": str})
    for inst, code in ((0, "005930"), (1, "000660")):
        closes = set(bars[bars.code == code]["종가"])
        assert set(frame[frame.instrument_id == inst].entry_units) <= closes
    again = synthesize_population(two_names(), TWO, seed=3)
    assert np.array_equal(again.loan, pop.loan)
    assert not np.array_equal(synthesize_population(two_names(), TWO, seed=4).loan, pop.loan)


def test_a_several_names_spec_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"names\[0\] sets accounts, which the spec sets"):
        synthesize_population(two_names(accounts=5), TWO, seed=1)
    twice = two_names()
    twice["names"][1]["instrument"] = "005930"
    with pytest.raises(ValueError, match=r"names\[1\]: instrument 005930 is also names\[0\]"):
        synthesize_population(twice, TWO, seed=1)
    with pytest.raises(ValueError, match="non-empty array of tables"):
        synthesize_population({**two_names(), "names": []}, TWO, seed=1)
    # a file of several codes without the name in it
    table = InstrumentTable([Instrument(0, "005935", venue="XKRX")])
    lone = {k: v for k, v in two_names().items() if k != "names"}
    with pytest.raises(TapeError, match="005935 is not one of them"):
        synthesize_population({**lone, "instrument": "005935", "accounts": 5,
                               "credit_balance_krw": 1e8}, table, seed=1)
