"""The compiled book against nautilus_trader's own L3 OrderBook, on real CME MBO data."""

import numpy as np
import pyarrow as pa
import pytest

from replay.bookview import book_levels
from replay.loaders import load
from replay.tape import F_LAST

nautilus = pytest.importorskip("nautilus_trader")

DEPTH = 10


def _nautilus_levels(path, n_rows_hint):
    from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId

    iid = InstrumentId.from_str("ESH4.GLBX")
    deltas = DatabentoDataLoader().from_dbn_file(str(path), instrument_id=iid)
    book = OrderBook(iid, BookType.L3_MBO)
    rows = []
    for d in deltas:
        book.apply_delta(d)
        if d.flags & F_LAST:
            row = [d.ts_init]
            bids, asks = book.bids()[:DEPTH], book.asks()[:DEPTH]
            for k in range(DEPTH):
                b = bids[k] if k < len(bids) else None
                a = asks[k] if k < len(asks) else None
                row += [b.price.as_double() if b else np.nan, b.size() if b else 0,
                        a.price.as_double() if a else np.nan, a.size() if a else 0]
            rows.append(row)
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("name", ["esh4-glbx-mdp3-20231224.mbo.dbn.zst",
                                  "esh4-glbx-mdp3-20231225.mbo.dbn.zst"])
def test_book_equals_nautilus_orderbook_after_every_packet(data_dir, name):
    path = data_dir / name
    loaded = load("dbn", [path])
    ours = pa.Table.from_batches(list(book_levels([loaded.events], loaded.instruments, DEPTH)))
    theirs = _nautilus_levels(path, ours.num_rows)
    assert ours.num_rows == len(theirs) > 0
    mine = np.column_stack([ours.column("ts").to_numpy()] +
                           [ours.column(c).to_numpy().astype(np.float64)
                            for c in ours.column_names[2:]])
    same = (mine == theirs) | (np.isnan(mine) & np.isnan(theirs))
    mismatching_rows = int((~same.all(axis=1)).sum())
    assert mismatching_rows == 0, f"{mismatching_rows} of {len(theirs)} rows differ"
