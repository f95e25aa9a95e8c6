"""reference/krx.md, tick size and daily price limits: which limit prices the KRX accepts."""

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


def test_injected_orders_for_a_krx_stock_are_checked(tmp_path):
    inst = InstrumentTable([Instrument(0, "005930", venue="XKRX", tick_units=100,
                                       prev_close_units=70_000)])
    ok = tmp_path / "ok.csv"
    ok.write_text("ts,instrument,side,type,price,size\n"
                  "2024-08-05T01:00:00Z,005930,sell,limit,49000,10\n"
                  "2024-08-05T01:00:01Z,005930,sell,market,,10\n")
    assert len(read_injected(ok, inst)) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,instrument,side,type,price,size\n"
                   "2024-08-05T01:00:00Z,005930,sell,limit,48000,10\n")
    with pytest.raises(TapeError, match="below the lower price limit 49,000") as exc:
        read_injected(bad, inst)
    assert (exc.value.row, exc.value.field) == (2, "price")
