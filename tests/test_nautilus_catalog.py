"""nautilus_trader catalogs as tapes (docs/data-formats.md: nautilus_trader catalog).

Each catalog is written in the test by nautilus_trader itself, from the shipped CME DBN
samples through its DatabentoDataLoader, and the tape read back is compared with the one
our own ``dbn`` loader makes of the same file.
"""

from pathlib import Path

import numpy as np
import pytest

from replay.bookview import book_levels
from replay.loaders import load
from replay.quality import TapeError
from replay.tape import ACTIONS, ASK, BID, NONE

nt = pytest.importorskip("nautilus_trader")

from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader  # noqa: E402
from nautilus_trader.model.data import OrderBookDelta, TradeTick  # noqa: E402
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide  # noqa: E402
from nautilus_trader.model.identifiers import InstrumentId, TradeId  # noqa: E402
from nautilus_trader.model.objects import Price, Quantity  # noqa: E402
from nautilus_trader.persistence.catalog import ParquetDataCatalog  # noqa: E402

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"  # the book's snapshot: adds only
SESSION = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"  # every action, and trades
FIELDS = ("ts", "instrument", "action", "side", "price", "size", "order_id", "flags",
          "sequence")


def catalog_of(dbn: Path, where: Path, first: int | None = None) -> Path:
    """A catalog written by nautilus_trader from ``dbn`` (its first ``first`` records)."""
    data = DatabentoDataLoader().from_dbn_file(dbn, include_trades=True)[:first]
    catalog = ParquetDataCatalog(str(where))
    for kind in (OrderBookDelta, TradeTick):
        mine = [d for d in data if isinstance(d, kind)]
        if mine:
            catalog.write_data(mine)
    return where


def test_snapshot_round_trip_equals_the_dbn_tape_field_by_field(tmp_path):
    ours = load("nautilus", [catalog_of(SNAPSHOT, tmp_path / "cat")])
    dbn = load("dbn", [SNAPSHOT])
    assert len(ours.events) == len(dbn.events) == 8725
    for name in FIELDS:
        assert np.array_equal(getattr(ours.events, name), getattr(dbn.events, name)), name
    a, b = ours.instruments[0], dbn.instruments[0]
    assert (a.symbol, a.book_type, a.price_decimals, a.size_decimals, a.tick_units) == (
        b.symbol, b.book_type, b.price_decimals, b.size_decimals, b.tick_units) == (
        "ESH4", "L3", 2, 0, 25)
    # the venue is the InstrumentId's (ESH4.GLBX); the DBN loader names the dataset
    assert (a.venue, b.venue) == ("GLBX", "GLBX.MDP3")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The CME session sample through a nautilus catalog, and through our DBN loader."""
    where = tmp_path_factory.mktemp("nautilus") / "cat"
    return load("nautilus", [catalog_of(SESSION, where)]), load("dbn", [SESSION])


def test_session_round_trip_deltas_and_trades_equal_the_dbn_tape(session):
    """What legitimately differs: nautilus's DatabentoDataLoader writes a cancel (C) as
    DELETE and a fill (F) as UPDATE, read back as D and M (an UPDATE of no side, an auction
    fill, as F); a TradeTick has no order id; and the catalog keeps deltas and trades apart,
    so within one packet (one ts_recv) the trades come before the deltas instead of
    interleaved with the fills. Everything else is equal, row for row."""
    ours, dbn = session[0].events, session[1].events
    assert len(ours) == len(dbn) == 68_792
    trade = ACTIONS["T"]
    a, b = dbn.take(dbn.action != trade), ours.take(ours.action != trade)
    mapped = a.action.copy()
    mapped[a.action == ACTIONS["C"]] = ACTIONS["D"]
    mapped[(a.action == ACTIONS["F"]) & (a.side != NONE)] = ACTIONS["M"]
    assert np.array_equal(b.action, mapped)
    assert set(np.unique(a.action)) == {ACTIONS[c] for c in "ACMF"}  # the file has each
    assert ((b.action == ACTIONS["F"]) & (b.side == NONE)).sum() > 0
    for name in ("ts", "instrument", "side", "price", "size", "order_id", "flags",
                 "sequence"):
        assert np.array_equal(getattr(b, name), getattr(a, name)), name
    a, b = dbn.take(dbn.action == trade), ours.take(ours.action == trade)
    assert len(a) == len(b) == 2973
    for name in ("ts", "instrument", "side", "price", "size", "flags", "sequence"):
        assert np.array_equal(getattr(b, name), getattr(a, name)), name
    assert (b.order_id == 0).all() and (a.order_id != 0).any()
    # each packet holds the same rows, its trades first
    assert np.array_equal(ours.ts, dbn.ts)
    first_of_ts = np.r_[True, ours.ts[1:] != ours.ts[:-1]]
    late_trade = (ours.action == trade) & ~first_of_ts & (np.r_[0, ours.action[:-1]] != trade)
    assert not late_trade.any()


def test_the_books_after_every_packet_equal(session):
    """D for C and M for F leave the book after every F_LAST as the DBN tape's."""
    (ours, dbn) = session
    mine = next(iter(book_levels([ours.events], ours.instruments, 10))).to_pandas()
    theirs = next(iter(book_levels([dbn.events], dbn.instruments, 10))).to_pandas()
    assert len(mine) == len(theirs) == 47_022
    assert mine.equals(theirs)


def test_clear_sides_and_an_l2_book_from_a_hand_written_catalog(tmp_path):
    iid = InstrumentId.from_str("005930.XKRX")
    t0 = 1_722_819_600_000_000_000  # 2024-08-05 09:00 KST

    def delta(action, side, price, size, ts, flags=0):
        from nautilus_trader.model.data import BookOrder
        return OrderBookDelta(iid, action, BookOrder(side, Price.from_str(price),
                                                     Quantity.from_int(size), 0),
                              flags, 7, ts, ts)

    deltas = [OrderBookDelta.clear(iid, 7, t0, t0),
              delta(BookAction.ADD, OrderSide.BUY, "72800", 10, t0, 32),
              delta(BookAction.ADD, OrderSide.SELL, "72900", 5, t0, 32 | 128),
              delta(BookAction.UPDATE, OrderSide.BUY, "72800", 4, t0 + 1, 128),
              delta(BookAction.DELETE, OrderSide.SELL, "72900", 0, t0 + 2, 128)]
    trades = [TradeTick(iid, Price.from_str("72800"), Quantity.from_int(6),
                        AggressorSide.SELLER, TradeId("T-1"), t0 + 1, t0 + 1)]
    catalog = ParquetDataCatalog(str(tmp_path / "cat"))
    catalog.write_data(deltas)
    catalog.write_data(trades)
    loaded = load("nautilus", [tmp_path / "cat"])
    ev = loaded.events
    assert [chr(a) for a in ev.action] == ["R", "A", "A", "T", "M", "D"]
    assert ev.side.tolist() == [NONE, BID, ASK, ASK, BID, ASK]
    assert ev.price.tolist() == [0, 72800, 72900, 72800, 72800, 72900]
    assert ev.size.tolist() == [0, 10, 5, 6, 4, 0]
    assert ev.flags.tolist() == [0, 32, 160, 0, 128, 128]
    assert ev.sequence.tolist() == [7, 7, 7, 0, 7, 7]  # trade id T-1 is not a number
    inst = loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.book_type, inst.price_decimals) == (
        "005930", "XKRX", "L2", 0)


def test_not_a_catalog_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TapeError, match="no OrderBookDelta or TradeTick"):
        load("nautilus", [tmp_path / "empty"])
    (tmp_path / "file.parquet").write_bytes(b"x")
    with pytest.raises(TapeError, match="not a directory"):
        load("nautilus", [tmp_path / "file.parquet"])


def test_import_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from replay.cli import app
    from replay.tape import Tape

    cat = catalog_of(SNAPSHOT, tmp_path / "cat")
    r = CliRunner().invoke(app, ["data", "import", "--format", "nautilus", str(cat),
                                 "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0, r.output
    assert "8,725 events of ESH4" in r.output
    assert len(Tape(tmp_path / "t.parquet")) == 8725


def test_a_stray_price_names_the_parquet_file_and_row(tmp_path):
    """A bad row is named by the catalog's own Parquet file and its row there."""
    from nautilus_trader.model.data import BookOrder

    iid = InstrumentId.from_str("005930.XKRX")
    t0 = 1_722_819_600_000_000_000
    deltas = [OrderBookDelta(iid, BookAction.ADD, BookOrder(OrderSide.BUY, Price.from_str(p),
                                                            Quantity.from_int(1), k + 1),
                             128, k, t0 + k, t0 + k)
              for k, p in enumerate(["72800", "72900", "10000000000000"])]
    catalog = ParquetDataCatalog(str(tmp_path / "cat"))
    catalog.write_data(deltas)
    with pytest.raises(TapeError) as info:
        load("nautilus", [tmp_path / "cat"])
    assert info.value.file.endswith(".parquet") and "order_book_delta" in info.value.file
    assert (info.value.row, info.value.field) == (3, "price")
