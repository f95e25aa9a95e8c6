"""Bad input, through the command a user runs: every loader, every case, one outcome each.

Each case writes a tiny file (or a real sample with one record changed) into tmp_path and
runs ``cascade data import`` (then ``cascade data check`` where a tape is written). A case
is either *rejected*: exit code 2, one line, no traceback, naming the file and, where there
is one, the row and field; or *repaired*: with ``--repair`` the import succeeds and the
tape's quality report counts the repair. A summary table (cases, rejected with location,
repaired and counted, silently accepted, tracebacks) is printed at the end of the module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

from replay.cli import app
from replay.loaders.dbn import MBO_DTYPE, UNDEF_PRICE
from replay.tape import EVENT_SCHEMA, METADATA_KEY, Instrument, InstrumentTable
from tests.test_loader_kis import REAL_TRADE, trade_record

DATA = Path(__file__).parent / "data"
T0 = 1_722_816_000 * 10**9  # 2024-08-05T00:00:00Z
NOISE = np.random.default_rng(10).bytes(200)  # random bytes, the same on every run
runner = CliRunner()
OUTCOMES: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it, and what must happen to it."""

    id: str
    fmt: str
    write: Callable[[Path], list[Path]]
    row: int | None = None  # the row (line, record) the message must name
    field: str | None = None  # the field it must name
    says: str = ""  # more text the message must hold
    repaired: tuple[str, int] | None = None  # with --repair: (counter, count)
    options: tuple[str, ...] = ()


def text(name: str, body: str | bytes) -> Callable[[Path], list[Path]]:
    def write(tmp: Path) -> list[Path]:
        path = tmp / name
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
        return [path]
    return write


# --- generic CSV ---------------------------------------------------------------------------
CSV_HEADER = "ts,instrument,action,side,price,size,order_id\n"


def csv(body: str, header: str = CSV_HEADER) -> Callable[[Path], list[Path]]:
    return text("events.csv", header + body)


def add(k: int, price: str = "70000", size: str = "10", side: str = "B", ts: str = "") -> str:
    return f"{ts or T0 + k},005930,A,{side},{price},{size},{k}\n"


CSV_CASES = [
    Case("csv-zero-price", "csv", csv(add(1) + add(2, "0")), 3, "price", "positive"),
    Case("csv-negative-price", "csv", csv(add(1) + add(2, "-5", side="A")), 3, "price",
         "positive"),
    Case("csv-price-far-off", "csv", csv(add(1) + add(2) + add(3, "70000000000")), 4, "price",
         "ticks"),
    Case("csv-ts-overflow", "csv", csv(add(1, ts="99999999999999999999")), 2, "ts", "1990"),
    Case("csv-ts-1677", "csv", csv(add(1, ts="-9000000000000000000")), 2, "ts", "1990"),
    Case("csv-ts-1970", "csv", csv(add(1, ts="1000")), 2, "ts", "1990"),
    Case("csv-price-near-int64", "csv", csv(add(1, "9223372036854775000")), 2, "price",
         "2**53"),
    Case("csv-size-near-int64", "csv", csv(add(1, size="9223372036854775000")), 2, "size",
         "2**53"),
    Case("csv-underscore-digits", "csv", csv(add(1, "70_900")), 2, "price"),
    Case("csv-full-width-price", "csv", csv(add(1, "７０９００")), 2, "price"),
    Case("csv-full-width-order-id", "csv", csv(f"{T0},005930,A,B,70000,10,１７\n"), 2,
         "order_id"),
    Case("csv-duplicate-row", "csv", csv(add(1) + add(2) + add(2)), 4, None, "duplicate",
         repaired=("duplicate_row", 1)),
    Case("csv-truncated-last-row", "csv", csv(add(1) + add(2) + f"{T0 + 3},005930,A,B,70000,10"),
         4, None, "truncated", repaired=("truncated_row", 1)),
    Case("csv-header-orderid", "csv", csv(add(1), CSV_HEADER.replace("order_id", "orderid")),
         1, None, "orderid"),
    Case("csv-header-order-id-space", "csv",
         csv(add(1), CSV_HEADER.replace("order_id", "order id")), 1, None, "order id"),
    Case("csv-not-utf8-or-cp949", "csv", text("events.csv", CSV_HEADER.encode() + b"\xff\xfe\n"),
         2, None, "byte offset"),
    Case("csv-random-bytes", "csv", text("events.csv", bytes(range(256)) * 4), None, None,
         "events.csv"),
    Case("csv-empty", "csv", text("events.csv", ""), None, None, "events.csv"),
    Case("csv-header-only", "csv", csv(""), None, None, "no events"),
    Case("csv-unsorted", "csv", csv(add(2) + add(1)), 3, "ts", repaired=("unsorted_ts", 1)),
]

# --- Tardis -------------------------------------------------------------------------------
TARDIS_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"


def tardis_row(us: str = "1585699200245000", price: str = "6421.5", amount: str = "18640",
               side: str = "ask") -> str:
    return f"deribit,BTC-PERPETUAL,{us},1585699200355684,false,{side},{price},{amount}\n"


def tardis(*rows: str) -> Callable[[Path], list[Path]]:
    return text("tardis.csv", TARDIS_HEADER + "".join(rows))


TARDIS_CASES = [
    Case("tardis-ts-overflow", "tardis", tardis(tardis_row(), tardis_row("9300000000000000")),
         3, "timestamp", "1990"),
    Case("tardis-ts-1677", "tardis", tardis(tardis_row("-9000000000000000")), 2, "timestamp",
         "1990"),
    Case("tardis-zero-price", "tardis", tardis(tardis_row(), tardis_row(price="0")), 3, "price",
         "positive"),
    Case("tardis-negative-price", "tardis", tardis(tardis_row(price="-6421.5")), 2, "price",
         "positive"),
    Case("tardis-price-near-int64", "tardis", tardis(tardis_row(price="9223372036854775000")),
         2, "price", "2**53"),
    Case("tardis-underscore-amount", "tardis", tardis(tardis_row(amount="18_640")), 2,
         "amount"),
    Case("tardis-full-width-price", "tardis", tardis(tardis_row(price="６４２１")), 2, "price"),
    Case("tardis-duplicate-row", "tardis", tardis(tardis_row(), tardis_row()), 3, None,
         "duplicate", repaired=("duplicate_row", 1)),
    Case("tardis-truncated-row", "tardis",
         tardis(tardis_row(), tardis_row("1585699200246000"), "deribit,BTC-PERPETUAL,15856"),
         4, None, "truncated", repaired=("truncated_row", 1)),
    Case("tardis-random-bytes", "tardis", text("tardis.csv", NOISE[:64] + b"\xff"), None,
         None, "tardis.csv"),
    Case("tardis-header-only", "tardis", tardis(), None, None, "no events"),
]

# --- Binance ------------------------------------------------------------------------------
BINANCE_HEADER = ("symbol,timestamp,first_update_id,last_update_id,side,update_type,price,"
                  "qty,pu\n")


def binance_row(ms: str = "1667347199939", price: str = "20472.80", qty: str = "1.000",
                u: int = 2098041696700) -> str:
    return f"BTCUSDT,{ms},2098041693435,{u},a,set,{price},{qty},2098041693400\n"


def binance(*rows: str) -> Callable[[Path], list[Path]]:
    return text("depth.csv", BINANCE_HEADER + "".join(rows))


BINANCE_CASES = [
    Case("binance-ts-overflow", "binance", binance(binance_row("9300000000000000")), 2,
         "timestamp", "1990"),
    Case("binance-ts-1677", "binance", binance(binance_row("-9000000000000")), 2, "timestamp",
         "1990"),
    Case("binance-zero-price", "binance", binance(binance_row(), binance_row(price="0.00")), 3,
         "price", "positive"),
    Case("binance-negative-price", "binance", binance(binance_row(price="-1")), 2, "price",
         "positive"),
    Case("binance-qty-near-int64", "binance", binance(binance_row(qty="9223372036854775")), 2,
         "qty", "2**53"),
    Case("binance-underscore-price", "binance", binance(binance_row(price="20_472.80")), 2,
         "price"),
    Case("binance-full-width-ts", "binance", binance(binance_row("１６６７３４７１９９９３９")),
         2, "timestamp"),
    Case("binance-duplicate-row", "binance", binance(binance_row(), binance_row()), 3, None,
         "duplicate", repaired=("duplicate_row", 1)),
    Case("binance-truncated-row", "binance", binance(binance_row(), "BTCUSDT,1667347199940,2"),
         3, None, "truncated", repaired=("truncated_row", 1)),
    Case("binance-random-bytes", "binance", text("depth.csv", bytes(range(128, 256)) * 8), None,
         None, "depth.csv"),
    Case("binance-header-only", "binance", binance(), None, None, "no events"),
]

# --- LOBSTER ------------------------------------------------------------------------------
LOB = ("--date", "2012-06-21")


def lob(*rows: str) -> Callable[[Path], list[Path]]:
    return text("AAPL_message.csv", "".join(rows))


def lob_row(t: str = "34200.004241176", kind: str = "1", oid: str = "16113575",
            size: str = "18", price: str = "5853300", direction: str = "1") -> str:
    return f"{t},{kind},{oid},{size},{price},{direction}\n"


LOBSTER_CASES = [
    Case("lobster-time-overflow", "lobster", lob(lob_row(t="99999999999999999999.0")), 1,
         "Time", options=LOB),
    Case("lobster-time-not-in-day", "lobster", lob(lob_row(t="9000000000.5")), 1, "Time",
         options=LOB),
    Case("lobster-zero-price", "lobster", lob(lob_row(), lob_row(oid="2", price="0")), 2,
         "Price", "positive", options=LOB),
    Case("lobster-negative-price", "lobster", lob(lob_row(price="-5853300")), 1, "Price",
         "positive", options=LOB),
    Case("lobster-size-near-int64", "lobster", lob(lob_row(size="9223372036854775807")), 1,
         "Size", "2**53", options=LOB),
    Case("lobster-price-far-off", "lobster",
         lob(lob_row(), lob_row(oid="2"), lob_row(oid="3", price="9000000000000")), 3, "Price",
         "ticks", options=LOB),
    Case("lobster-underscore-size", "lobster", lob(lob_row(size="1_8")), 1, "Size",
         options=LOB),
    Case("lobster-full-width-price", "lobster", lob(lob_row(price="５８５３３００")), 1, "Price",
         options=LOB),
    Case("lobster-duplicate-row", "lobster", lob(lob_row(), lob_row()), 2, None, "duplicate",
         repaired=("duplicate_row", 1), options=LOB),
    Case("lobster-truncated-row", "lobster", lob(lob_row(), "34200.1,1,2,18,585"), 2, None,
         "truncated", repaired=("truncated_row", 1), options=LOB),
    Case("lobster-random-bytes", "lobster", text("AAPL_message.csv", b"\x80\x81" * 64), 1, None,
         "byte offset", options=LOB),
    Case("lobster-empty", "lobster", text("AAPL_message.csv", ""), None, None, "no events",
         options=LOB),
]

# --- Bybit --------------------------------------------------------------------------------


def bybit_msg(ts: object = 1733011200691, kind: str = "snapshot", bids=(("1.9531", "6203"),),
              asks=(("1.9532", "100"),), seq: object = 7) -> str:
    return json.dumps({"topic": "orderbook.500.XRPUSDT", "type": kind, "ts": ts,
                       "data": {"s": "XRPUSDT", "b": [list(b) for b in bids],
                                "a": [list(a) for a in asks], "u": 1, "seq": seq}},
                      ensure_ascii=False) + "\n"


def bybit(*lines: str | bytes) -> Callable[[Path], list[Path]]:
    return text("orderbook.data",
                b"".join(x if isinstance(x, bytes) else x.encode() for x in lines))


BYBIT_CASES = [
    Case("bybit-ts-overflow", "bybit", bybit(bybit_msg(ts=99999999999999999999)), 1, "ts"),
    Case("bybit-ts-1677", "bybit", bybit(bybit_msg(ts=-9000000000000)), 1, "ts"),
    Case("bybit-ts-1970", "bybit", bybit(bybit_msg(ts=1000)), 1, "ts", "1990"),
    Case("bybit-seq-overflow", "bybit", bybit(bybit_msg(seq=2**64)), 1, "data.seq"),
    Case("bybit-zero-price", "bybit", bybit(bybit_msg(bids=(("0", "5"),))), 1, "data.b",
         "positive"),
    Case("bybit-negative-price", "bybit", bybit(bybit_msg(asks=(("-1.9532", "5"),))), 1,
         "data.a", "positive"),
    Case("bybit-underscore-size", "bybit", bybit(bybit_msg(bids=(("1.9531", "6_203"),))), 1,
         "data.b"),
    Case("bybit-full-width-size", "bybit", bybit(bybit_msg(bids=(("1.9531", "６２０３"),))), 1,
         "data.b"),
    Case("bybit-size-near-int64", "bybit",
         bybit(bybit_msg(bids=(("1.9531", "9223372036854775000"),))), 1, "data.b", "2**53"),
    Case("bybit-duplicate-line", "bybit", bybit(bybit_msg(), bybit_msg(kind="delta"),
                                                bybit_msg(kind="delta")), 3, None, "duplicate",
         repaired=("duplicate_row", 1)),
    Case("bybit-truncated-line", "bybit", bybit(bybit_msg(), bybit_msg(kind="delta")[:40]), 2,
         None, "JSON"),
    Case("bybit-not-utf8", "bybit", bybit(bybit_msg(), b"\xff\xfe\xfd\n"), 2, None,
         "byte offset"),
    Case("bybit-empty", "bybit", bybit(""), None, None, "no events"),
]

# --- KIS ----------------------------------------------------------------------------------


def kis(*lines: str | bytes) -> Callable[[Path], list[Path]]:
    return text("kis.txt", b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n"
                                    for x in lines))


def kis_trade(hhmmss: str = "090001", price: object = 62700, size: object = 5) -> str:
    return "0|H0STCNT0|001|" + trade_record(hhmmss, price, size, "1")


KIS_CASES = [
    Case("kis-price-1e20", "kis", kis(kis_trade(price="100000000000000000000")), 1,
         "STCK_PRPR", "2**53"),
    Case("kis-size-near-int64", "kis", kis(kis_trade(size="9223372036854775807")), 1,
         "CNTG_VOL", "2**53"),
    Case("kis-underscore-price", "kis", kis(kis_trade(price="62_700")), 1, "STCK_PRPR"),
    Case("kis-full-width-price", "kis", kis(kis_trade(price="６２７００")), 1, "STCK_PRPR"),
    Case("kis-frames-re-sorted", "kis", kis(kis_trade("090005"), kis_trade("090001")), 2,
         "HOUR", repaired=("unsorted_ts", 1)),
    Case("kis-duplicate-frame", "kis", kis(kis_trade(), kis_trade()), 2, None, "duplicate",
         repaired=("duplicate_row", 1)),
    Case("kis-receive-time-overflow", "kis", kis("99999999999999999999999 " + REAL_TRADE), 1,
         "receive_time", "1990"),
    Case("kis-price-far-off", "kis", kis(kis_trade("090001"), kis_trade("090002"),
                                         kis_trade("090003", price=10**12)), 3, "price",
         "ticks"),
    Case("kis-zero-price", "kis", kis(kis_trade(price=0)), 1, "STCK_PRPR", "positive"),
    Case("kis-not-utf8-or-cp949", "kis", kis(REAL_TRADE.encode(), b"\xff\xfe"), 2, None,
         "byte offset"),
    Case("kis-empty", "kis", text("kis.txt", "\n"), None, None, "no events"),
]

# --- DBN (the real CME sample with one record changed) -------------------------------------
DBN_SAMPLE = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def dbn(change: Callable[[np.ndarray], None], keep: int | None = None
        ) -> Callable[[Path], list[Path]]:
    """The sample with ``change`` applied to its records (a structured array), uncompressed;
    ``keep`` cuts the file to that many bytes."""
    def write(tmp: Path) -> list[Path]:
        raw = zstandard.ZstdDecompressor().stream_reader(DBN_SAMPLE.open("rb")).read()
        start = 8 + int.from_bytes(raw[4:8], "little")
        rec = np.frombuffer(bytearray(raw[start:]), MBO_DTYPE).copy()
        change(rec)
        data = raw[:start] + rec.tobytes()
        path = tmp / "esh4.mbo.dbn"
        path.write_bytes(data if keep is None else data[:keep])
        return [path]
    return write


def first_add(rec: np.ndarray) -> int:
    return int(np.flatnonzero(rec["action"] == b"A")[0])


def set_at(column: str, value: object, which: Callable[[np.ndarray], int] = first_add):
    def change(rec: np.ndarray) -> None:
        rec[column][which(rec)] = value
    return change


def dbn_row(change_at: Callable[[np.ndarray], int] = first_add) -> int:
    """The 1-based record number the change lands on."""
    raw = zstandard.ZstdDecompressor().stream_reader(DBN_SAMPLE.open("rb")).read()
    start = 8 + int.from_bytes(raw[4:8], "little")
    return change_at(np.frombuffer(raw[start:], MBO_DTYPE)) + 1


def nudge_price(rec: np.ndarray) -> None:
    i = first_add(rec)
    rec["price"][i] += 10_000_000  # 0.01 on a 0.25 grid, in units of 1e-9


ROW = dbn_row()
DBN_CASES = [
    Case("dbn-zstd-garbage", "dbn", text("x.mbo.dbn.zst", b"\x28\xb5\x2f\xfd" + NOISE),
         None, None, "zstd"),
    Case("dbn-zstd-of-nothing", "dbn", text("y.mbo.dbn.zst", b"\x28\xb5\x2f\xfd" + bytes(99)),
         None, None, "DBN"),
    Case("dbn-random-bytes", "dbn", text("x.mbo.dbn", NOISE), None, None, "DBN"),
    Case("dbn-ts-overflow", "dbn", dbn(set_at("ts_recv", 2**63 + 5)), ROW, "ts_recv", "1990"),
    Case("dbn-ts-1970", "dbn", dbn(set_at("ts_recv", 1)), ROW, "ts_recv", "1990"),
    Case("dbn-zero-size-add", "dbn", dbn(set_at("size", 0)), ROW, "size",
         repaired=("non_positive_size", 1)),
    Case("dbn-undefined-price", "dbn", dbn(set_at("price", UNDEF_PRICE)), ROW, "price",
         repaired=("undefined_price", 1)),
    Case("dbn-off-grid-price", "dbn", dbn(nudge_price), ROW, "price", "grid",
         repaired=("off_grid_price", 1)),
    Case("dbn-zero-price", "dbn", dbn(set_at("price", 0)), ROW, "price", "positive"),
    Case("dbn-negative-price", "dbn", dbn(set_at("price", -4_800_000_000_000)), ROW, "price",
         "positive"),
    Case("dbn-price-far-off", "dbn", dbn(set_at("price", 4_800_000 * 10**9)), ROW, "price",
         "ticks"),
    Case("dbn-truncated-record", "dbn", dbn(lambda rec: None, keep=-20), None, "length"),
]

CASES = CSV_CASES + TARDIS_CASES + BINANCE_CASES + LOBSTER_CASES + BYBIT_CASES + KIS_CASES \
    + DBN_CASES
FORMATS = {"dbn", "bybit", "binance", "tardis", "lobster", "csv", "kis"}


def cascade(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    if not OUTCOMES:
        return
    counts = Counter(OUTCOMES.values())
    rows = [("cases", len(OUTCOMES)),
            ("rejected with location", counts["rejected"]),
            ("repaired and counted", counts["repaired"]),
            ("silently accepted", counts["accepted"]),
            ("tracebacks", counts["traceback"]),
            ("wrong or missing location", counts["unlocated"])]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line("bad-input suite (tests/test_bad_input.py):")
            for name, n in rows:
                reporter.write_line(f"  {name:<28}{n:>5}")


def test_every_loader_has_cases():
    assert {c.fmt for c in CASES} == FORMATS
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_rejected_naming_file_row_and_field(case: Case, tmp_path):
    paths = case.write(tmp_path)
    tape = tmp_path / "tape.parquet"
    r = cascade("data", "import", "--format", case.fmt, *paths, "-o", tape, *case.options)
    message = one_line(r.output)
    key = case.id
    if r.exit_code == 0:
        OUTCOMES[key] = "accepted"
        pytest.fail(f"silently accepted: {message}")
    if r.exception is not None and not isinstance(r.exception, SystemExit) or \
            "Traceback" in r.output:
        OUTCOMES[key] = "traceback"
        pytest.fail(f"traceback: {r.exception!r} {message}")
    assert r.exit_code == 2, message
    located = paths[0].name in message and (case.row is None or f"row {case.row}" in message) \
        and (case.field is None or repr(case.field)[:-1] in message) \
        and case.says in message
    OUTCOMES[key] = "rejected" if located else "unlocated"
    assert paths[0].name in message, message
    if case.row is not None:
        assert f"row {case.row}" in message, message
    if case.field is not None:
        assert f"field '{case.field}" in message, message
    assert case.says in message, message
    assert message.startswith("error:") and "Traceback" not in r.output, message
    assert not tape.exists()


REPAIRED = [c for c in CASES if c.repaired]


@pytest.mark.parametrize("case", REPAIRED, ids=lambda c: c.id)
def test_bad_input_is_repaired_and_counted(case: Case, tmp_path):
    paths = case.write(tmp_path)
    tape = tmp_path / "tape.parquet"
    r = cascade("data", "import", "--format", case.fmt, "--repair", *paths, "-o", tape,
                *case.options)
    assert r.exit_code == 0, one_line(r.output)
    counter, n = case.repaired
    assert counter in one_line(r.output)
    check = cascade("data", "check", "--json", tape)
    assert check.exit_code in (0, 1), check.output
    report = json.loads(check.output)
    assert report["repairs_at_import"].get(counter) == n, report
    OUTCOMES[case.id + " --repair"] = "repaired"


# --- what is accepted is decoded and read as documented -----------------------------------

def test_cp949_and_euc_kr_text_is_decoded(tmp_path):
    for encoding in ("cp949", "euc-kr"):
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes((CSV_HEADER + f"{T0},삼성전자,A,B,70000,10,1\n").encode(encoding))
        tape = tmp_path / f"{encoding}.parquet"
        r = cascade("data", "import", "--format", "csv", path, "-o", tape)
        assert r.exit_code == 0, r.output
        report = json.loads(cascade("data", "check", "--json", tape).output)
        assert report["instruments"] == ["삼성전자"]


def test_header_case_is_ignored_so_order_Id_is_order_id(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV_HEADER.replace("order_id", "order_Id") + add(1) + add(2))
    tape = tmp_path / "t.parquet"
    assert cascade("data", "import", "--format", "csv", path, "-o", tape).exit_code == 0
    report = json.loads(cascade("data", "check", "--json", tape).output)
    assert report["problems"]["duplicate_add"] == 0
    from replay.tape import Tape
    assert Tape(tape).instruments[0].book_type == "L3"


def test_lobster_halt_rows_are_status_events_and_the_sample_checks_in_bounded_memory(tmp_path):
    from replay.engine import MAX_LADDER_LEVELS, Replay
    from replay.tape import Tape
    from venues.book import I_N

    tape = tmp_path / "lob.parquet"
    r = cascade("data", "import", "--format", "lobster", DATA / "lobster-synthetic-message.csv",
                "--date", "2012-06-21", "-o", tape)
    assert r.exit_code == 0, r.output
    check = cascade("data", "check", "--json", tape)
    assert check.exit_code in (0, 1), check.output
    assert json.loads(check.output)["actions"]["S"] == 3
    t = Tape(tape)
    rp = Replay(t.instruments, "absolute")
    rp.run(t.chunks())
    # 5,853,200-5,859,100 at a tick of 1 is a few thousand levels, not one per unit from 1
    assert int(rp.book.ins[0, I_N]) < 100_000 < MAX_LADDER_LEVELS


def test_a_ladder_is_bounded_and_a_price_outside_it_is_an_error():
    from replay.engine import MAX_LADDER_LEVELS, Replay

    rp = Replay(InstrumentTable([Instrument(0, "X")]), "absolute")
    rp._ensure_ladder(0, np.array([100, 200]))
    with pytest.raises(ValueError, match="levels"):
        rp._ensure_ladder(0, np.array([100, 100 + 2 * MAX_LADDER_LEVELS]))


# --- data check ---------------------------------------------------------------------------

def raw_tape(path: Path, ts: list[int], price: list[int], action: str = "A",
             instruments: InstrumentTable | None = None) -> Path:
    """A tape written around TapeWriter (as another tool could), to test the check."""
    n = len(ts)
    instruments = instruments or InstrumentTable([Instrument(0, "X")])
    inst = instruments.instruments[0].instrument_id
    cols = {"ts": ts, "instrument": [inst] * n, "action": [ord(action)] * n,
            "side": [ord("B")] * n, "price": price, "size": [1] * n,
            "order_id": list(range(1, n + 1)), "flags": [128] * n, "sequence": list(range(n))}
    schema = EVENT_SCHEMA.with_metadata(
        {METADATA_KEY: instruments.to_json().encode()})
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), path)
    return path


def test_check_order_does_not_wrap_around_int64(tmp_path):
    tape = raw_tape(tmp_path / "t.parquet", [9 * 10**18, -9 * 10**18], [100, 100])
    r = cascade("data", "check", "--json", tape)
    assert r.exit_code == 1, r.output
    report = json.loads(r.output)
    assert report["problems"]["unsorted_ts"] == 1
    assert report["problems"]["ts_out_of_range"] == 2
    assert report["first_row"]["unsorted_ts"] == 2
    assert report["first_row"]["ts_out_of_range"] == 1


def test_check_of_a_tape_with_a_non_positive_price_names_it_without_allocating(tmp_path):
    tape = raw_tape(tmp_path / "t.parquet", [T0, T0 + 1], [70000, -5])
    r = cascade("data", "check", "--json", tape)
    assert r.exit_code == 1, r.output
    report = json.loads(r.output)
    assert report["problems"]["non_positive_price"] == 1
    assert report["first_row"]["non_positive_price"] == 2
    assert report["replayed"] is False


def test_check_names_the_first_row_of_every_problem(tmp_path):
    src = tmp_path / "e.csv"
    src.write_text(CSV_HEADER + add(1) + f"{T0 + 2},005930,C,B,70000,1,99\n" + add(3)
                   + add(1, ts=str(T0 + 4)) + f"{T0 + 5},005930,A,A,69000,1,7\n")
    tape = tmp_path / "t.parquet"
    assert cascade("data", "import", "--format", "csv", src, "-o", tape).exit_code == 0
    r = cascade("data", "check", "--json", tape)
    report = json.loads(r.output)
    assert report["problems"]["unknown_order_id"] == 1
    assert report["problems"]["duplicate_add"] == 1
    assert report["problems"]["crossed_book_at_packet_end"] >= 1
    assert report["first_row"] == {"unknown_order_id": 2, "duplicate_add": 4,
                                   "crossed_book_at_packet_end": 5}
    table = cascade("data", "check", tape)
    assert table.exit_code == 1
    for word in ("problem", "first row", "what it means", "unknown_order_id",
                 "never saw"):
        assert word in table.output


def test_check_first_rows_on_the_real_cme_file(tmp_path):
    tape = tmp_path / "esh4.parquet"
    assert cascade("data", "import", "--format", "dbn", DBN_SAMPLE, "-o", tape).exit_code == 0
    report = json.loads(cascade("data", "check", "--json", tape).output)
    assert report["problems"]["unknown_order_id"] == 7
    assert report["problems"]["crossed_book_at_packet_end"] == 15
    assert set(report["first_row"]) == {"unknown_order_id", "crossed_book_at_packet_end"}


def test_check_uses_the_krx_tick_table_by_band(tmp_path):
    # a small-cap day that gaps 25% down, from about 6,000 to below 5,000 won, where the
    # tick is 5: every price there was called off a 10-won grid (145,821 of them)
    tape = tmp_path / "gap.parquet"
    r = cascade("data", "synth", "--profile", "krx-smallcap", "--days", "2", "--seed", "5",
                "--shock", "1:-0.25", "-o", tape)
    assert r.exit_code == 0, r.output
    from replay.tape import Tape
    t = Tape(tape)
    prices = t.read().price
    assert (prices[(prices > 0) & (prices < 5000)] % 10 == 5).any()  # the case is present
    report = json.loads(cascade("data", "check", "--json", tape).output)
    assert report["problems"]["off_grid_price"] == 0
    # and a price off its band's tick is still found: 4,997 (tick 5), 5,005 (tick 10)
    ev = t.read().take(slice(0, 3))
    bad = raw_tape(tmp_path / "bad.parquet", [int(x) for x in ev.ts], [4997, 4995, 5005],
                   instruments=t.instruments)
    report = json.loads(cascade("data", "check", "--json", bad).output)
    assert report["problems"]["off_grid_price"] == 2
    assert report["first_row"]["off_grid_price"] == 1


def test_check_of_a_tape_the_ladder_cannot_hold_says_so_without_allocating(tmp_path):
    tape = raw_tape(tmp_path / "t.parquet", [T0, T0 + 1], [100, 100 + 10**8])
    r = cascade("data", "check", "--json", tape)
    assert r.exit_code == 1, r.output
    report = json.loads(r.output)
    assert report["replayed"] is False and "levels" in report["replay_error"]
    table = cascade("data", "check", tape)
    assert table.exit_code == 1 and "not replayed" in table.output


def test_a_duplicate_line_names_the_line_it_repeats_across_blank_lines():
    from replay.quality import RepairLog, TapeError, distinct_lines

    lines = ["a", "", "b", "", "b"]
    with pytest.raises(TapeError, match="row 5: exact duplicate of line 3 "):
        list(distinct_lines(lines, "f.txt", False, RepairLog()))
    log = RepairLog()
    assert list(distinct_lines(lines, "f.txt", True, log)) == [(1, "a"), (3, "b")]
    assert log.counts["duplicate_row"] == 1
