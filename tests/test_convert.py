"""L3 -> L2 conversion keeps the book: the L2 stream rebuilds the same levels."""

import numpy as np
import pyarrow as pa

from replay.bookview import book_levels
from replay.convert import to_l2
from replay.loaders import load
from replay.tape import DELETE, F_LAST, FILL, MODIFY


def _book(events, instruments):
    return pa.Table.from_batches(list(book_levels([events], instruments, 10)))


def test_l2_form_of_the_cme_mbo_sample_rebuilds_the_same_book(data_dir):
    loaded = load("dbn", [data_dir / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"])
    l2, table = to_l2(loaded.events, loaded.instruments)
    assert set(np.unique(l2.order_id)) == {0}
    assert not np.isin(l2.action, [FILL]).any()
    assert np.isin(l2.action, [MODIFY, DELETE]).sum() > 0.5 * len(l2)
    # as many packet ends as the source: the books after each must be equal
    assert (l2.flags & F_LAST > 0).sum() == (loaded.events.flags & F_LAST > 0).sum()
    want = _book(loaded.events, loaded.instruments)
    got = _book(l2, table)
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        a, b = want.column(name).to_numpy(), got.column(name).to_numpy()
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
