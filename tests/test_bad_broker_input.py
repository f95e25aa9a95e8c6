"""Bad broker and strategy inputs, met where a user meets them: ``cascade replay`` (and
``cascade compare``) with rules, ``--set``, a population (CSV or TOML spec, its daily bars),
``--strategy`` and ``--param``.

Each case is a row of a table: the arguments, and what must happen. ``REJECTED`` cases exit
2 with one line (no traceback) naming where the problem is (the ``--set`` item, the file,
the row, the key) and what is allowed. The ``counted`` cases run, and say in the console
and in summary.json what was left out. No case may be accepted silently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import Instrument, InstrumentTable, write_tape
from tests.test_broker_cascade import book_tape

HEADER = "account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
OK_ROW = "101,instant,X,60,10000,0,426450,2024-01-02\n"
#: the tiny cascade tape of tests/test_broker_cascade.py, dated 2024-01-02 10:00 KST
T0 = int(datetime(2024, 1, 2, 1, 0, tzinfo=UTC).timestamp()) * 10**9


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The tiny tape, a valid population, and every bad input file of the tables."""
    d = tmp_path_factory.mktemp("bad-broker")
    events = book_tape()
    events.ts[:] += T0
    write_tape(d / "book.parquet", events, InstrumentTable([Instrument(1, "X", tick_units=100)]))
    # the same book at the KRX (the example strategies' accounts are valued at the close)
    write_tape(d / "krx.parquet", events, InstrumentTable([Instrument(
        1, "X", venue="XKRX", tick_units=10, prev_close_units=10_000)]))
    paths = {"tape": d / "book.parquet", "krx": d / "krx.parquet"}

    def put(name: str, text: str | bytes) -> None:
        path = d / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths[name] = path

    put("ok.csv", HEADER + OK_ROW)
    put("late.csv", HEADER + OK_ROW + "102,instant,X,100,10000,0,703607,2024-01-03\n")
    put("loan18.csv", HEADER + OK_ROW + "102,instant,X,100,10000,0,123456789012345678,"
        "2024-01-02\n")
    put("loan9e17.csv", HEADER + "102,instant,X,100,10000,0,900000000000000000,2024-01-02\n")
    put("cash_big.csv", HEADER + "102,instant,X,100,10000,1000000000001,0,2024-01-02\n")
    put("position_big.csv", HEADER + "102,instant,X,200000000,10000,0,1000,2024-01-02\n")
    put("underscore.csv", HEADER + "102,instant,X,100,70_900,0,1000,2024-01-02\n")
    put("fullwidth.csv", HEADER + "102,instant,X,１００,10000,0,1000,2024-01-02\n")
    put("cp949.csv", (HEADER + "102,신용,X,100,10000,0,1000,2024-01-02\n").encode("cp949"))
    put("mixed.csv", HEADER + OK_ROW + "7,misu,X,10,10000,0,60000,2024-01-02\n"
        "8,misu,X,10,10000,0,60000,2024-01-02\n")
    # rules files
    rules = (Path(__file__).parent.parent / "brokers" / "presets" / "instant.toml").read_text()
    put("ratio140.toml", rules.replace("maintenance_ratio = 1.4 ", "maintenance_ratio = 140 "))
    put("grace99.toml", rules.replace("grace_days = 0 ", "grace_days = 99 "))
    put("twice.toml", rules + "grace_days = 1\n")
    put("cp949.toml", rules.replace('description = "', 'description = "신용').encode("cp949"))
    # population specs over daily bars dated 2024-01-02 and before / after
    bars = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"2023-12-{day},10000,10000,10000,10000,1000\n" for day in (26, 27, 28))
    put("bars.csv", bars)
    put("bars_late.csv", bars + "2024-01-03,10000,10000,10000,10000,1000\n")
    put("bars_underscore.csv", bars.replace("10000,1000\n2023-12-28", "10000,1_000\n2023-12-28"))
    put("bars_fullwidth.csv", bars.replace("2023-12-28,10000,10000,10000,10000",
                                           "2023-12-28,10000,10000,10000,１００００"))
    spec = ('bars = "{bars}"\ninstrument = "X"\nkind = "instant"\naccounts = {accounts}\n'
            'credit_balance_krw = {balance}\nloan_term_days = 2\n{extra}')

    def put_spec(name: str, bars: str = "bars.csv", accounts: str = "10",
                 balance: str = "5e6", extra: str = "") -> None:
        put(name, spec.format(bars=bars, accounts=accounts, balance=balance, extra=extra))

    put_spec("spec_ok.toml")
    put_spec("spec_as_of_late.toml", extra='as_of = "2024-01-05"\n')
    put_spec("spec_bars_late.toml", bars="bars_late.csv")
    put_spec("spec_balance_big.toml", balance="1e30")
    put_spec("spec_accounts_big.toml", accounts="100_000_000_000")
    put_spec("spec_twice.toml", extra="accounts = 20\n")
    put_spec("spec_text_number.toml", balance='"70_900"')
    put_spec("spec_fullwidth.toml", accounts="１０")
    put_spec("spec_bars_underscore.toml", bars="bars_underscore.csv")
    put_spec("spec_bars_fullwidth.toml", bars="bars_fullwidth.csv")
    put("broken_strategy.py", "from strategies.base import Strategy\n\n"
        "class Broken(Strategy)\n    pass\n")
    return paths


REJECTED = "rejected"

#: (case id, arguments after ``cascade replay TAPE``, strings the one-line error must hold).
#: ``{name}`` is a file of the fixture.
RULES = ["--broker", "instant"]
POPULATION = ["--population", "{ok.csv}"]
BROKER = [*RULES, *POPULATION]
KRX = ["--venue", "krx"]  # the example strategies' margin accounts are valued at the close

REPLAY_CASES = [
    # -- rules from --set (instant: a ratio rule valued at every trade) ----------------------
    ("set-ratio-140", [*BROKER, "--set", "maintenance_ratio=140"],
     ["--set maintenance_ratio=140", "140.0", "[1, 3]", "ratios are fractions: 1.4 = 140%"]),
    ("set-ratio-14", [*BROKER, "--set", "maintenance_ratio=14"],
     ["--set maintenance_ratio=14", "[1, 3]", "ratios are fractions: 1.4 = 140%"]),
    ("set-target-140", [*BROKER, "--set", "size=restore", "--set", "target_ratio=140"],
     ["--set target_ratio=140", "ratios are fractions"]),
    ("set-margin-40", [*BROKER, "--set", "margin_rate=40"],
     ["--set margin_rate=40", "(0, 1]", "rates are fractions: 0.4 = 40%"]),
    ("set-interest-5", [*BROKER, "--set", "interest_rate=5"],
     ["--set interest_rate=5", "[0, 1]"]),
    ("set-cure-2", [*BROKER, "--set", "cure_probability=2"],
     ["--set cure_probability=2", "[0, 1]"]),
    ("set-grace-99", [*BROKER, "--set", "grace_days=99"], ["--set grace_days=99", "[0, 30]"]),
    ("set-term-huge", [*BROKER, "--set", "loan_term_days=100000"],
     ["--set loan_term_days=100000", "[0, 3650]"]),
    ("set-grace-underscore", [*BROKER, "--set", "grace_days=1_0"],
     ["--set grace_days=1_0", "'1_0'", "an integer"]),
    ("set-ratio-fullwidth", [*BROKER, "--set", "maintenance_ratio=１.４"],
     ["maintenance_ratio", "'１.４'", "a number"]),
    ("set-ratio-nan", [*BROKER, "--set", "maintenance_ratio=nan"], ["maintenance_ratio", "'nan'"]),
    ("set-twice", [*BROKER, "--set", "grace_days=0", "--set", "grace_days=1"],
     ["--set grace_days=1", "given twice", "grace_days=0"]),
    ("set-ratio-twice", [*BROKER, "--set", "maintenance_ratio=1.3", "--set",
                         "maintenance_ratio=1.5"],
     ["maintenance_ratio", "given twice"]),
    # -- rules files ---------------------------------------------------------------------
    ("toml-ratio-140", [*POPULATION, "--broker", "{ratio140.toml}"],
     ["ratio140.toml", "maintenance_ratio = 140.0", "[1, 3]", "ratios are fractions"]),
    ("toml-grace-99", [*POPULATION, "--broker", "{grace99.toml}"],
     ["grace99.toml", "grace_days = 99"]),
    ("toml-key-twice", [*POPULATION, "--broker", "{twice.toml}"],
     ["twice.toml", "not valid TOML"]),
    ("toml-cp949", [*POPULATION, "--broker", "{cp949.toml}"], ["cp949.toml", "not UTF-8"]),
    ("toml-missing", [*POPULATION, "--broker", "nowhere.toml"], ["nowhere.toml", "no such"]),
    # -- population CSV ------------------------------------------------------------------
    ("csv-dated-after-start", [*RULES, "--population", "{late.csv}"],
     ["late.csv", "row 3", "trade_date", "2024-01-03", "first day (2024-01-02)"]),
    ("csv-loan-18-digits", [*RULES, "--population", "{loan18.csv}"],
     ["loan18.csv", "row 3", "loan", "10^12"]),
    ("csv-loan-9e17", [*RULES, "--population", "{loan9e17.csv}"],
     ["loan9e17.csv", "row 2", "loan", "10^12"]),
    ("csv-cash-above-bound", [*RULES, "--population", "{cash_big.csv}"],
     ["cash_big.csv", "row 2", "cash", "10^12"]),
    ("csv-position-above-bound", [*RULES, "--population", "{position_big.csv}"],
     ["position_big.csv", "row 2", "shares", "10^12"]),
    ("csv-underscore-digits", [*RULES, "--population", "{underscore.csv}"],
     ["underscore.csv", "row 2", "entry_price", "70_900"]),
    ("csv-fullwidth-digits", [*RULES, "--population", "{fullwidth.csv}"],
     ["fullwidth.csv", "row 2", "shares"]),
    ("csv-missing", [*RULES, "--population", "nowhere.csv"], ["nowhere.csv", "no such"]),
    ("csv-cp949", [*RULES, "--population", "{cp949.csv}"],
     ["cp949.csv", "row 2", "'kind'", "not UTF-8", "'신용'"]),
    # -- population spec (TOML) and its bars ---------------------------------------------
    ("spec-as-of-after-start", [*RULES, "--population", "{spec_as_of_late.toml}"],
     ["spec_as_of_late.toml", "as_of", "2024-01-05", "first day (2024-01-02)"]),
    ("spec-bars-after-start", [*RULES, "--population", "{spec_bars_late.toml}"],
     ["spec_bars_late.toml", "bars", "2024-01-03", "set as_of"]),
    ("spec-balance-1e30", [*RULES, "--population", "{spec_balance_big.toml}"],
     ["spec_balance_big.toml", "credit_balance_krw", "10^12"]),
    ("spec-accounts-1e11", [*RULES, "--population", "{spec_accounts_big.toml}"],
     ["spec_accounts_big.toml", "accounts", "10,000,000"]),
    ("spec-key-twice", [*RULES, "--population", "{spec_twice.toml}"],
     ["spec_twice.toml", "not valid TOML"]),
    ("spec-number-as-text", [*RULES, "--population", "{spec_text_number.toml}"],
     ["spec_text_number.toml", "credit_balance_krw", "'70_900'", "a number"]),
    ("spec-fullwidth-digits", [*RULES, "--population", "{spec_fullwidth.toml}"],
     ["spec_fullwidth.toml", "not valid TOML", "line 4"]),
    ("bars-underscore", [*RULES, "--population", "{spec_bars_underscore.toml}"],
     ["bars_underscore.csv", "row 3", "Volume", "1_000"]),
    ("bars-fullwidth", [*RULES, "--population", "{spec_bars_fullwidth.toml}"],
     ["bars_fullwidth.csv", "row 4", "Close"]),
    # -- strategy and --param ------------------------------------------------------------
    ("strategy-missing-file", ["--strategy", "nowhere.py:X"], ["nowhere.py", "no file"]),
    ("strategy-missing-shipped", ["--strategy", "strategies/nowhere.py:X"],
     ["strategies/nowhere.py:X", "no module"]),
    ("strategy-missing-module", ["--strategy", "nowhere_pkg.mod:X"],
     ["nowhere_pkg.mod", "no module"]),
    ("strategy-syntax-error", ["--strategy", "{broken_strategy.py}:Broken"],
     ["broken_strategy.py", "SyntaxError", "line 3"]),
    ("param-not-a-number", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param",
                            "take_profit=abc"],
     ["take_profit", "'abc'", "a number"]),
    ("param-underscore", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param",
                          "take_profit=1_0"], ["take_profit", "'1_0'", "a number"]),
    ("param-bool", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param",
                    "pay_at_settlement=maybe"], ["pay_at_settlement", "'maybe'", "boolean"]),
    ("param-int", [*KRX, "--strategy", "strategies/credit_momentum.py:CreditMomentum",
                   "--param",
                   "lookback=2.5"], ["lookback", "'2.5'", "an integer"]),
    ("param-unknown", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param",
                       "take_proft=0.1"],
     ["unknown parameter 'take_proft'", "take_profit", "pay_at_settlement"]),
    ("param-twice", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param", "dip=0.1",
                     "--param", "dip=0.2"], ["--param dip=0.2", "given twice"]),
    ("param-cash-1e30", [*KRX, "--strategy", "strategies/misu_dip.py:MisuDip", "--param",
                         "cash=1e30"], ["cash", "1e30"]),
    ("param-without-strategy", ["--param", "dip=0.1"], ["--param", "--strategy"]),
]

def _args(files: dict[str, Path], extra: list[str], out: Path) -> list[str]:
    """``cascade replay TAPE EXTRA -o OUT`` with ``{name}`` replaced by the fixture's file."""
    filled = []
    for a in extra:
        if a.startswith("{") and "}" in a:
            name, rest = a[1:].split("}", 1)
            a = str(files[name]) + rest
        filled.append(a)
    tape = files["krx"] if "--venue" in extra else files["tape"]
    return ["replay", str(tape), *filled, "-o", str(out)]


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("case, extra, expected", REPLAY_CASES, ids=[c[0] for c in REPLAY_CASES])
def test_bad_input_is_one_line_naming_where(files, tmp_path, case, extra, expected):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _args(files, extra, out))
    line = _one_line_error(result)
    for text in expected:
        assert text in line, (case, line)
    assert not (out / "summary.json").exists()  # nothing was run


def test_a_key_given_for_every_variant_and_again_for_one_is_refused(files, tmp_path):
    result = CliRunner().invoke(app, [
        "compare", str(files["tape"]), "--population", str(files["ok.csv"]),
        "--venue", "generic", "--set", "maintenance_ratio=1.3", "--broker", "instant",
        "--broker", "instant,maintenance_ratio=1.2", "-o", str(tmp_path / "cmp")])
    line = _one_line_error(result)
    assert "maintenance_ratio" in line and "given twice" in line


def test_the_valid_inputs_of_the_tables_run(files, tmp_path):
    """The cases' shared inputs are valid: each rejection above is the case's own."""
    for population in ("ok.csv", "spec_ok.toml"):
        out = tmp_path / population
        result = CliRunner().invoke(app, ["replay", str(files["tape"]), "--broker", "instant",
                                          "--population", str(files[population]), "-o",
                                          str(out)])
        assert result.exit_code == 0, result.output
        assert (out / "summary.json").exists()


def test_accounts_of_another_kind_are_counted_in_console_and_summary(files, tmp_path):
    """3 accounts: one instant (the broker's kind), two 미수 that an instant broker does not
    handle: they are left out, and the run says so, with the count per kind."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["replay", str(files["tape"]), "--broker", "instant",
                                      "--population", str(files["mixed.csv"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ignored 2 misu account(s)" in " ".join(result.output.split())
    b = json.loads((out / "summary.json").read_text())["broker"]
    assert (b["accounts_managed"], b["accounts_ignored"]) == (1, {"misu": 2})


def test_the_figures_are_named_for_what_they_count(files, tmp_path):
    """The cascade of tests/test_broker_cascade.py (an exogenous sell breaks A, whose sale
    breaks B, whose sale breaks C): with the forced orders all three are called, ordered
    and sold; without them (the counterfactual) only A is breached, and its order is never
    sent: called and force-ordered 1, force-sold 0."""
    pop = files["tape"].parent / "three.csv"
    pop.write_text(HEADER + "101,instant,X,60,10000,0,426450,2024-01-02\n"
                   "102,instant,X,100,10000,0,703607,2024-01-02\n"
                   "103,instant,X,120,10000,0,835757,2024-01-02\n")
    sells = files["tape"].parent / "sells.csv"
    sells.write_text(f"ts,instrument,side,type,price,size\n{T0 + 3},X,sell,market,,150\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["replay", str(files["tape"]), "--broker", "instant",
                                      "--population", str(pop), "--inject", str(sells), "-o",
                                      str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    b, c = summary["broker"], summary["counterfactual"]
    keys = ("accounts_managed", "accounts_called", "accounts_force_ordered",
            "accounts_force_sold", "accounts_wiped_out")
    assert [b[k] for k in keys] == [3, 3, 3, 3, 0]
    assert [c[k] for k in keys] == [3, 1, 1, 0, 0]
    assert "accounts_breached" not in b and "accounts_liquidated" not in b
    assert "3 called, 3 given forced orders, 3 force-sold" in " ".join(result.output.split())


def test_the_docs_state_each_range_the_rules_enforce():
    """docs/brokers.md's "Every parameter" table gives each numeric field's range exactly as
    brokers.rules.RANGES enforces it, and no numeric field is missing from either."""
    from brokers.rules import RANGES, Rules, field_types, load_rules

    docs = (Path(__file__).parent.parent / "docs" / "brokers.md").read_text()
    rows = {}
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[1] in ("int", "float"):
            rows[cells[0].strip("`")] = cells[4]
    numeric = {k for k, t in field_types().items() if t in (int, float)}
    assert set(rows) == numeric == set(RANGES)
    for name, valid in RANGES.items():
        assert f"`{valid.text()}`" in rows[name], (name, rows[name], valid.text())
    # and each end of each range is where the code draws it: inside accepted, outside refused
    preset = {"haircut": "krx-misu", "freeze_days": "krx-misu", "freeze_threshold": "krx-misu",
              "call_level": "cfd", "liquidation_level": "cfd"}
    # the cross-field rules held apart, so that only the range decides
    apart = {"call_level": {"liquidation_level": 0.0}, "liquidation_level": {"call_level": 1.0},
             "target_ratio": {"maintenance_ratio": 1.0}}
    for name, valid in RANGES.items():
        rules = _fields(load_rules(preset.get(name, "krx-credit")))
        rules.update(apart.get(name, {}))
        want = field_types()[name]
        step = 1 if want is int else 1e-9
        for edge, is_open, outward in ((valid.low, valid.low_open, -step),
                                       (valid.high, valid.high_open, step)):
            inside, outside = (edge - outward, edge) if is_open else (edge, edge + outward)
            Rules(**{**rules, name: want(inside)})
            with pytest.raises(ValueError, match=f"{name} = .* is outside"):
                Rules(**{**rules, name: want(outside)})


def _fields(rules) -> dict:
    from dataclasses import fields

    return {f.name: getattr(rules, f.name) for f in fields(rules)}


def test_parameters_are_typed_by_annotation_then_default():
    from datetime import date, time

    from strategies.base import ParameterError, Strategy

    class Timed(Strategy):
        buy_at: time = time(9, 5)
        until: date = date(2024, 1, 31)
        size = 10  # no annotation: an int by its default
        label = "x"

    s = Timed(buy_at="09:30", until="2024-02-01", size="5e2", label="y", cash="1000")
    assert (s.buy_at, s.until, s.size, s.label, s.cash) == (
        time(9, 30), date(2024, 2, 1), 500, "y", 1000)
    for key, value, word in (("buy_at", "9h30", "a time"), ("until", "2024-02-30", "a date"),
                             ("size", "１０", "an integer"), ("size", 2.5, "an integer"),
                             ("buy_at", 930, "a time"), ("cash", -1, "outside")):
        with pytest.raises(ParameterError, match=f"{key} = .* (is not {word}|{word})"):
            Timed(**{key: value})


@pytest.fixture(scope="module")
def credit_tape(tmp_path_factory) -> Path:
    """The README's credit example tape: three krx-smallcap days, seed 7."""
    path = tmp_path_factory.mktemp("credit") / "credit.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--profile", "krx-smallcap", "--days", "3",
                                 "--seed", "7", "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path


def test_the_example_spec_is_held_before_the_synthetic_tapes_start():
    """The shipped spec's positions are dated before 2024-01-02, the first day of every
    synthetic tape (they were dated up to 2024-06-27, so the README's credit example
    replayed accounts whose purchases lay in its future)."""
    from datetime import date

    import numpy as np

    from replay.loaders.population import synthesize_population
    from replay.tape import Instrument, InstrumentTable

    spec = Path(__file__).parent.parent / "brokers" / "examples" / "credit-population.toml"
    pop = synthesize_population(spec, InstrumentTable([Instrument(1, "SYNTH-SMALL",
                                                                  venue="XKRX")]), seed=0,
                                held_by=date(2024, 1, 2))
    assert pop.pos_trade_date.max() < np.datetime64("2024-01-02").astype(np.int64)


def test_the_readme_credit_example_force_sells(credit_tape, tmp_path):
    """README step 5: the example spec's credit accounts are called at the first close, sold
    in the third morning's pre-open auction, and the 미수 accounts are said to be ignored."""
    spec = Path(__file__).parent.parent / "brokers" / "examples" / "credit-population.toml"
    out = tmp_path / "credit"
    r = CliRunner().invoke(app, ["replay", str(credit_tape), "--venue", "krx", "--mode",
                                 "relative", "--broker", "krx-credit", "--population",
                                 str(spec), "--set", "maintenance_ratio=1.3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    b = json.loads((out / "summary.json").read_text())["broker"]
    assert b["accounts_ignored"] == {"misu": 3000} and b["accounts_managed"] == 7000
    assert b["accounts_force_sold"] > 1000 and b["forced_volume"] > 0
    assert b["accounts_called"] >= b["accounts_force_ordered"] >= b["accounts_force_sold"]
    assert "ignored 3,000 misu account(s)" in " ".join(r.output.split())


def test_the_amount_bound_keeps_the_broker_arithmetic_exact():
    """At 10^12 won (brokers.rules.MAX_WON) the triggers the broker computes in int64 equal
    the exact integer ones, at the largest ratio any rule can set (maintenance_ratio 3, a CFD
    at liquidation_level 0.9 x margin_rate 1: 10); beyond it the population is refused."""
    import numpy as np

    from brokers.engine import BP, trigger_prices
    from brokers.population import Population
    from brokers.rules import MAX_WON

    shares = np.array([1, 7, 10**6, MAX_WON], np.int64)
    loan = np.full(4, MAX_WON, np.int64)
    cash = np.array([0, 1, MAX_WON // 3, MAX_WON], np.int64)
    for ratio_bp in (BP, 3 * BP, 10 * BP):
        for strict in (True, False):
            got = trigger_prices(shares, loan, ratio_bp, strict=strict, cash=cash,
                                 cash_bp=ratio_bp)
            for i in range(4):
                num = ratio_bp * int(loan[i]) - ratio_bp * int(cash[i])
                den = int(shares[i]) * BP
                want = -1 if num <= 0 else (-(-num // den) - 1 if strict else num // den)
                assert got[i] == want
    one = {"account_id": [1], "kind": [3], "cash": [0], "loan": [MAX_WON],
           "pos_account": [0], "pos_instrument": [1], "pos_shares": [10**8],
           "pos_entry": [10**4], "pos_trade_date": [0]}
    Population(**one)
    for key, value in (("loan", [MAX_WON + 1]), ("cash", [-1]), ("pos_shares", [10**8 + 1])):
        with pytest.raises(ValueError, match="10\\^12"):
            Population(**{**one, key: value})


def test_daily_bars_saved_as_cp949_read_as_the_utf8_file(tmp_path):
    """Excel saves a Korean CSV in CP949: pykrx's Korean headers in CP949 give the same bars
    (and the same population) as the UTF-8 file."""
    import numpy as np
    import pandas as pd

    from replay.loaders.daily_bars import read_daily_bars

    bars = Path(__file__).parent.parent / "brokers" / "examples" / "synthetic-bars.csv"
    korean = tmp_path / "bars-cp949.csv"
    pd.read_csv(bars).rename(columns={"Date": "날짜", "Open": "시가", "High": "고가",
                                      "Low": "저가", "Close": "종가", "Volume": "거래량"}
                             ).to_csv(korean, index=False, encoding="cp949")
    with pytest.raises(UnicodeDecodeError):
        korean.read_text(encoding="utf-8")
    a, b = read_daily_bars(korean), read_daily_bars(bars)
    assert np.array_equal(a.date, b.date) and np.array_equal(a.close, b.close)
    assert np.array_equal(a.volume, b.volume)
