"""Credit-loan balances (docs/reference/krx-data-formats.md: 5; docs/data-formats.md: KOFIA
credit balances). The daily KOSPI file is real (tests/data); the FreeSIS records are built
from the reference's sample record and made-up neighbours."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.loaders.credit import COLUMNS, read_credit_balance
from replay.quality import TapeError

SHIPPED = Path(__file__).parent / "data" / "kospi-index-credit-balance-daily.csv"
SAMPLE = {"TMPV1": "20260602", "TMPV2": 37709128, "TMPV3": 27924185, "TMPV4": 9784943}
OLDER = {"TMPV1": "20260601", "TMPV2": 37600000, "TMPV3": 27800000, "TMPV4": 9800000}


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_the_shipped_daily_kospi_balance_in_won():
    table = read_credit_balance(SHIPPED)
    assert tuple(table.columns) == COLUMNS
    assert table.dtypes.tolist() == [np.dtype("datetime64[ns]")] + [np.dtype(np.int64)] * 3
    lines = [x for x in SHIPPED.read_text().splitlines() if not x.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert len(table) == len(rows) == 68
    assert table["date"].is_monotonic_increasing
    expected = {pd.Timestamp(r["Date"]): int(float(r["Credit_Balance_KOSPI"])) * 10**6
                for r in rows}
    assert dict(zip(table["date"], table["kospi"], strict=True)) == expected
    assert (table["total"] == -1).all() and (table["kosdaq"] == -1).all()


def test_newest_first_rows_give_the_same_table(tmp_path):
    lines = SHIPPED.read_text().splitlines()
    flipped = write(tmp_path / "newest-first.csv", "\n".join(lines[:2] + lines[2:][::-1]))
    assert read_credit_balance(flipped).equals(read_credit_balance(SHIPPED))


def test_freesis_json_records_as_a_list_or_wrapped(tmp_path):
    records = [SAMPLE, OLDER]
    bare = read_credit_balance(write(tmp_path / "a.json", json.dumps(records)))
    wrapped = read_credit_balance(write(tmp_path / "b.json", json.dumps({"ds1": records})))
    assert bare.equals(wrapped)
    assert bare["date"].tolist() == [pd.Timestamp("2026-06-01"), pd.Timestamp("2026-06-02")]
    assert bare.iloc[1][["total", "kospi", "kosdaq"]].tolist() == [
        37_709_128_000_000, 27_924_185_000_000, 9_784_943_000_000]


def test_freesis_csv_with_tmpv_or_korean_headers(tmp_path):
    tmpv = "TMPV1,TMPV2,TMPV3,TMPV4\n20260602,37709128,27924185,9784943\n"
    korean = ('일자,신용거래융자 전체,유가증권,코스닥\n'
              '2026/06/02,"37,709,128","27,924,185","9,784,943"\n')
    a = read_credit_balance(write(tmp_path / "a.csv", tmpv))
    b = read_credit_balance(write(tmp_path / "b.csv", korean, encoding="cp949"))
    assert a.equals(b) and a.iloc[0]["kosdaq"] == 9_784_943_000_000


def test_a_fraction_of_a_million_is_kept_to_the_won(tmp_path):
    table = read_credit_balance(write(tmp_path / "a.csv", "TMPV1,TMPV2\n20260602,1.000001\n"))
    assert table["total"].tolist() == [1_000_001]


GOOD = "TMPV1,TMPV2,TMPV3,TMPV4\n20260601,3,2,1\n20260602,3,2,1\n20260603,3,2,1\n"


@pytest.mark.parametrize("old, new, row, field, why", [
    ("20260602,3", "20260602,-3", 3, "TMPV2", "negative"),
    ("20260602,3", "20260602,3x", 3, "TMPV2", "not an amount"),
    ("20260602,3", "20260602,3.0000001", 3, "TMPV2", "not an amount"),
    ("20260602,3,2", "20260602,3,2,5", 3, None, "5 fields"),
    ("20260602", "20260631", 3, "TMPV1", "not a date"),
    ("20260602", "20260601", 3, "TMPV1", "repeats the date of row 2"),
    ("20260603", "20260501", 4, "TMPV1", "breaks the rows' order"),
    ("TMPV1", "TMPV9", 1, "date", "missing column"),
])
def test_bad_balances_name_file_row_and_field(tmp_path, old, new, row, field, why):
    path = write(tmp_path / "bad.csv", GOOD.replace(old, new, 1))
    with pytest.raises(TapeError, match=why) as info:
        read_credit_balance(path)
    assert (info.value.file, info.value.row, info.value.field) == (str(path), row, field)


def test_bad_json_records_name_the_record(tmp_path):
    bad = [OLDER, {**SAMPLE, "TMPV3": "27,924,18"}]
    with pytest.raises(TapeError) as info:
        read_credit_balance(write(tmp_path / "a.json", json.dumps(bad)))
    assert (info.value.row, info.value.field) == (2, "TMPV3")
    with pytest.raises(TapeError, match="not JSON"):
        read_credit_balance(write(tmp_path / "b.json", "[{"))
