"""docs/reference/krx.md, "Settlement and calendar": T+2 on KRX trading days (XKRX calendar)."""

from datetime import date

import pytest

from venues.krx import settlement_date
from venues.krx.calendar import is_trading_day


def test_t_plus_two_over_a_weekend():
    assert settlement_date("2024-08-02") == date(2024, 8, 6)  # Fri -> Tue (5 Aug is T+1)


def test_t_plus_two_skips_korean_holidays():
    # Seollal 2024: 9-12 Feb closed; a Thursday trade settles on Wednesday 14 Feb
    assert settlement_date(date(2024, 2, 8)) == date(2024, 2, 14)
    # Chuseok 2024: 16-18 Sep closed
    assert settlement_date(date(2024, 9, 13)) == date(2024, 9, 20)
    # year-end closing day 29 Dec 2023
    assert settlement_date(date(2023, 12, 28)) == date(2024, 1, 3)


def test_a_non_trading_day_is_rejected():
    assert not is_trading_day("2024-02-09")
    with pytest.raises(ValueError, match="not an XKRX trading day"):
        settlement_date("2024-02-10")


def test_the_session_list_is_exchange_calendars_own_and_kept_on_disk(tmp_path, monkeypatch):
    import exchange_calendars
    import numpy as np
    import pandas as pd

    from venues.krx import calendar

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendar.sessions.cache_clear()
    try:
        days = calendar.sessions()
        assert calendar._cache_file().exists()
        calendar.sessions.cache_clear()
        assert np.array_equal(calendar.sessions(), days)  # read back from the file
    finally:
        calendar.sessions.cache_clear()
    xkrx = exchange_calendars.get_calendar("XKRX", start=pd.Timestamp("2024-01-01"),
                                           end=pd.Timestamp("2024-12-31"))
    want = xkrx.sessions.values.astype("datetime64[D]")
    got = days[(days >= want[0]) & (days <= want[-1])]
    assert np.array_equal(got, want)


def test_the_krx_calendar_object_is_xkrx_days_on_the_seoul_clock():
    from datetime import time

    from venues.krx.calendar import KRX_CALENDAR, sessions

    cal = KRX_CALENDAR
    assert cal.sessions() is sessions()
    assert not cal.is_trading_day(date(2024, 2, 9)) and cal.is_trading_day(date(2024, 2, 8))
    assert cal.next_trading_day(date(2024, 2, 8)) == date(2024, 2, 13)  # over Seollal
    assert cal.trading_days_after(date(2024, 2, 8), 2) == date(2024, 2, 14)
    # 09:00 in Seoul (UTC+9) is 00:00 UTC: 2024-01-05 00:00 UTC = 1,704,412,800 s
    assert cal.local_ns(date(2024, 1, 5), time(9)) == 1_704_412_800 * 10**9
    # one second before is still 4 January in UTC, already 5 January in Seoul
    assert cal.local_date((1_704_412_800 - 1) * 10**9) == date(2024, 1, 5)
    assert cal.local_date((1_704_412_800 - 9 * 3600 - 1) * 10**9) == date(2024, 1, 4)
