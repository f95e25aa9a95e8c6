"""docs/reference/krx.md, tick size and daily price limits: which limit prices the KRX accepts."""

from datetime import date

import pytest

from replay.inject import read_injected
from replay.quality import TapeError
from replay.tape import Instrument, InstrumentTable
from venues.krx.orders import rejection

DAY = date(2024, 8, 5)


def test_prices_inside_the_limits_on_the_grid_are_accepted():
    # base 9,980 -> limits 6,990 / 12,970 (krx.md's example); tick 10 at 5,000-20,000
    assert rejection(6_990, base=9_980, on=DAY) is None
    assert rejection(12_970, base=9_980, on=DAY) is None
    assert rejection(10_000, base=9_980, on=DAY) is None


@pytest.mark.parametrize("price, words", [(12_980, "above the upper price limit 12,970"),
                                          (6_980, "below the lower price limit 6,990"),
                                          (10_005, "not on the tick grid (tick 10")])
def test_prices_the_krx_refuses_come_with_the_reason(price, words):
    assert words in rejection(price, base=9_980, on=DAY)


def test_tick_bands_change_inside_the_limits():
    # base 50,000: limits 35,000 / 65,000; below 50,000 the tick is 50, above it 100
    assert rejection(49_950, base=50_000, on=DAY) is None
    assert "tick 100" in rejection(50_050, base=50_000, on=DAY)


def test_injected_krx_orders_are_read_as_given_and_the_venue_refuses_them(tmp_path):
    """A KRX day's limits depend on the previous day's simulated close, so the CSV reader
    does not judge prices: the venue does, on arrival, and says why."""
    import numpy as np

    from replay.engine import Replay
    from replay.tape import Events

    inst = InstrumentTable([Instrument(0, "005930", venue="XKRX", tick_units=100,
                                       prev_close_units=70_000)])
    csv = tmp_path / "orders.csv"
    csv.write_text("ts,instrument,side,type,price,size,program\n"
                   "2024-08-05T01:00:00Z,005930,sell,limit,49000,10,0\n"
                   "2024-08-05T01:00:01Z,005930,sell,limit,48000,10,1\n"
                   "2024-08-05T01:00:02Z,005930,sell,market,,10,\n")
    orders = read_injected(csv, inst)
    assert list(orders.flags) == [0, 1, 0]
    tape = Events.from_columns({c: np.zeros(0, np.int64) for c in
                                ("ts", "instrument", "action", "side", "price", "size")})
    result = Replay(inst, venue="krx").run([tape], orders)
    # base 70,000 -> lower limit 49,000 (krx.md:22-25)
    assert list(result.injected.status) == [7, 4, 7]  # rested (expired), rejected, rested
    assert result.injected.reason[1] == 3  # below the lower price limit
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,instrument,side,type,price,size,program\n"
                   "2024-08-05T01:00:00Z,005930,sell,limit,49000,10,maybe\n")
    with pytest.raises(TapeError, match="program") as exc:
        read_injected(bad, inst)
    assert (exc.value.row, exc.value.field) == (2, "program")
