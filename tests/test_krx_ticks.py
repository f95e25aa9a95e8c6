"""KRX tick table and daily limits, against the numbers in docs/reference/krx.md."""

from datetime import date, datetime

import numpy as np
import pytest

from venues.krx import price_limits, tick_size
from venues.krx.limits import limit_percent
from venues.krx.ticks import (
    is_on_grid,
    price_grid,
    round_down_to_tick,
    round_up_to_tick,
    tick_at,
    tick_below,
    tick_table,
)

NEW = date(2024, 5, 2)  # a day under the 2023-01-25 table
OLD = date(2022, 11, 1)  # a day under the previous table

# docs/reference/krx.md, "Tick size ... since 2023-01-25": (band's lowest price, tick below it,
# tick from it on).
NEW_BOUNDARIES = [(2_000, 1, 5), (5_000, 5, 10), (20_000, 10, 50), (50_000, 50, 100),
                  (200_000, 100, 500), (500_000, 500, 1_000)]
# docs/reference/krx.md, "Before 2023-01-25 (KOSPI): < 1,000: 1; 1,000-5,000: 5; ...".
OLD_KOSPI_BOUNDARIES = [(1_000, 1, 5), (5_000, 5, 10), (10_000, 10, 50), (50_000, 50, 100),
                        (100_000, 100, 500), (500_000, 500, 1_000)]


@pytest.mark.parametrize(("bound", "below", "above"), NEW_BOUNDARIES)
def test_tick_changes_at_each_band_of_the_2023_table(bound, below, above):
    assert tick_size(bound - 1, on=NEW) == below
    assert tick_size(bound, on=NEW) == above
    # KOSPI and KOSDAQ share the table since 2023-01-25.
    assert tick_size(bound, on=NEW, market="KOSDAQ") == above


@pytest.mark.parametrize(("bound", "below", "above"), OLD_KOSPI_BOUNDARIES)
def test_tick_changes_at_each_band_of_the_pre_2023_kospi_table(bound, below, above):
    assert tick_size(bound - 1, on=OLD) == below
    assert tick_size(bound, on=OLD) == above


def test_pre_2023_kosdaq_tick_is_capped_at_100_above_50000():
    # docs/reference/krx.md: "(KOSDAQ capped at 100 above 50,000)".
    for price in (50_000, 99_999, 100_000, 499_999, 500_000, 1_200_000):
        assert tick_size(price, on=OLD, market="KOSDAQ") == 100
    assert tick_size(49_999, on=OLD, market="KOSDAQ") == 50


def test_the_regime_switches_on_2023_01_25():
    # 1,500 won: 5 under the old table (1,000-5,000), 1 under the new one (< 2,000).
    assert tick_size(1_500, on=date(2023, 1, 24)) == 5
    assert tick_size(1_500, on=date(2023, 1, 25)) == 1
    assert tick_size(1_500, on=datetime(2023, 1, 25, 9, 0)) == 1
    assert tick_size(15_000, on=date(2023, 1, 24)) == 50
    assert tick_size(15_000) == 10  # no date: today's table


def test_etf_tick_is_5_won_and_1_won_below_2000():
    # docs/reference/krx.md: "ETFs: 5 won (1 won below 2,000 ...)".
    assert tick_size(1_999, etf=True) == 1
    assert tick_size(2_000, etf=True) == 5
    assert tick_size(600_000, on=OLD, etf=True) == 5


def test_tick_size_takes_arrays():
    prices = np.array([1_999, 2_000, 49_950, 50_000, 500_000])
    assert tick_size(prices, on=NEW).tolist() == [1, 5, 50, 100, 1_000]


def test_compiled_tick_at_agrees_with_tick_size_on_both_regimes():
    rng = np.random.default_rng(3)
    prices = np.unique(np.concatenate([rng.integers(1, 2_000_000, 5_000),
                                       [b for b, _, _ in NEW_BOUNDARIES],
                                       [b for b, _, _ in OLD_KOSPI_BOUNDARIES]]))
    for on, market in ((NEW, "KOSPI"), (OLD, "KOSPI"), (OLD, "KOSDAQ")):
        bounds, ticks = tick_table(on, market=market)
        compiled = np.array([tick_at(p, bounds, ticks) for p in prices])
        assert np.array_equal(compiled, tick_size(prices, on=on, market=market))


def test_tick_below_steps_into_the_band_below_at_a_band_bound():
    bounds, ticks = tick_table(NEW)
    assert tick_below(2_000, bounds, ticks) == 1  # 2,000 -> 1,999
    assert tick_below(2_005, bounds, ticks) == 5  # 2,005 -> 2,000
    assert tick_below(50_000, bounds, ticks) == 50  # 50,000 -> 49,950


def test_rounding_and_grid_membership():
    assert round_down_to_tick(70_050, on=NEW) == 70_000
    assert round_up_to_tick(70_050, on=NEW) == 70_100
    assert round_up_to_tick(49_990, on=NEW) == 50_000
    assert round_down_to_tick(2_004, on=NEW) == 2_000
    assert round_up_to_tick(1_999, on=NEW) == 1_999
    assert is_on_grid(49_950, on=NEW) and not is_on_grid(50_050, on=NEW)
    assert is_on_grid(np.array([0, 1, 2_003, 2_005])).tolist() == [False, True, False, True]


def test_price_grid_is_every_valid_price_between_the_limits():
    grid = price_grid(49_000, 51_000, on=NEW)
    expected = list(range(49_000, 50_000, 50)) + list(range(50_000, 51_001, 100))
    assert grid.tolist() == expected
    assert is_on_grid(price_grid(1_500, 25_000, on=OLD), on=OLD).all()


def test_non_positive_prices_and_unknown_markets_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        tick_size(0)
    with pytest.raises(ValueError, match="KOSPI, KOSDAQ"):
        tick_size(1_000, market="NYSE")
    with pytest.raises(ValueError, match="positive"):
        price_limits(0)


def test_krx_limit_example_base_9980():
    # docs/reference/krx.md: "KRX example: base 9,980 -> width 2,994 -> 2,990 -> upper 12,970,
    # lower 6,990".
    assert price_limits(9_980, on=NEW) == (6_990, 12_970)
    # Under the pre-2023 table 12,970 sits in the 10,000-50,000 band (tick 50): 12,950.
    assert price_limits(9_980, on=OLD) == (6_990, 12_950)


def test_upper_limit_is_truncated_to_the_tick_of_its_own_band():
    # docs/reference/krx.md: "each truncated to the tick at the resulting price". 15,400 + 4,620
    # = 20,020 lands in the 50-won band: 20,000.
    assert price_limits(15_400, on=NEW) == (10_780, 20_000)
    # 70,000 +- 21,000: the lower limit crosses into the 50-won band and stays on its grid.
    assert price_limits(70_000, on=NEW) == (49_000, 91_000)


def test_limit_is_15_percent_before_2015_06_15():
    # docs/reference/krx.md: "+-30% of the base price since 2015-06-15 (15% before ...)".
    assert limit_percent(date(2015, 6, 12)) == 15
    assert limit_percent(date(2015, 6, 15)) == 30
    # 9,980 x 15% = 1,497 -> 1,490; 11,470 sits in the old 10,000-50,000 band (tick 50).
    assert price_limits(9_980, on=date(2015, 6, 12)) == (8_490, 11_450)


def test_limits_are_always_on_the_grid():
    for base in range(1, 600_000, 997):
        base = round_down_to_tick(base, on=NEW)
        lower, upper = price_limits(base, on=NEW)
        assert is_on_grid(lower, on=NEW) and is_on_grid(upper, on=NEW)
        assert lower <= base <= upper
