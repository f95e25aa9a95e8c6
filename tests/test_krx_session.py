"""docs/reference/krx.md, "Sessions (regular)": phases and the auctions' random ends."""

from datetime import UTC, date, datetime, timedelta
from datetime import time as t

from venues.krx.session import schedule, seoul_ns

DAY = date(2024, 8, 5)
SEC = 10**9


def test_phases_follow_the_seoul_clock_in_utc():
    s = schedule(DAY, seed=1)
    # 08:30 KST is 23:30 UTC the day before
    assert s.pre_open_ns == int(datetime(2024, 8, 4, 23, 30, tzinfo=UTC).timestamp()) * SEC
    assert s.phase(seoul_ns(DAY, t(8, 29, 59))) == "closed"
    assert s.phase(seoul_ns(DAY, t(8, 45))) == "opening_auction"
    assert s.phase(seoul_ns(DAY, t(10, 0))) == "continuous"
    assert s.phase(seoul_ns(DAY, t(15, 25))) == "closing_auction"
    assert s.phase(seoul_ns(DAY, t(15, 35))) == "between"
    assert s.phase(seoul_ns(DAY, t(15, 50))) == "post_close"
    assert s.phase(seoul_ns(DAY, t(16, 0))) == "closed"


def test_each_auction_ends_within_30_seconds_after_its_nominal_end():
    # krx.md: "Every single-price auction ends at a random moment within 30 s"
    for seed in range(50):
        s = schedule(DAY, seed)
        assert 0 <= s.open_ns - seoul_ns(DAY, t(9, 0)) < 30 * SEC
        assert 0 <= s.close_ns - seoul_ns(DAY, t(15, 30)) < 30 * SEC


def test_random_ends_come_from_the_seed():
    assert schedule(DAY, 7) == schedule(DAY, 7)
    ends = {schedule(DAY, seed).open_ns for seed in range(20)}
    assert len(ends) > 15  # different seeds, different ends
    # the same seed draws a new end each day
    next_day = DAY + timedelta(days=1)
    assert (schedule(DAY, 7).open_ns - seoul_ns(DAY, t(9, 0))
            != schedule(next_day, 7).open_ns - seoul_ns(next_day, t(9, 0)))
