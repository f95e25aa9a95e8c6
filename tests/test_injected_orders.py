"""injected.parquet ties every injected order back to its input, and the console says which
orders were rejected or left unfilled, and why."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.inject import INJECTED_COLUMNS

runner = CliRunner()


def cascade(*args):
    return runner.invoke(app, [str(a) for a in args])


def _tape(tmp_path):
    csv = tmp_path / "small.csv"
    csv.write_text("ts,instrument,action,side,price,size,order_id\n"
                   "2024-01-02T00:00:01Z,X,A,B,100,5,1\n"
                   "2024-01-02T00:00:02Z,X,A,B,99,5,2\n"
                   "2024-01-02T00:00:03Z,X,A,A,101,5,3\n"
                   "2024-01-02T00:00:04Z,X,A,A,102,5,4\n")
    tape = tmp_path / "small.parquet"
    r = cascade("data", "import", "--format", "csv", csv, "-o", tape)
    assert r.exit_code == 0, r.output
    return tape


def test_injected_table_ties_each_order_to_its_input_row(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("ts,instrument,side,type,price,size\n"
                      "2024-01-02T00:00:05Z,X,sell,market,,7\n"     # 5 @ 100 + 2 @ 99
                      "2024-01-02T00:00:06Z,X,buy,fok,102,11\n"     # 10 offered: rejected
                      "2024-01-02T00:00:07Z,X,buy,limit,101,12\n"   # 5 @ 101, 7 rest
                      "2024-01-02T00:00:08Z,X,sell,ioc,105,4\n"     # no bid at 105
                      "2024-01-02T00:00:09Z,X,sell,market,,3\n")    # 3 @ 101, row 3's
    run = tmp_path / "run"
    r = cascade("replay", _tape(tmp_path), "--inject", orders, "-o", run)
    assert r.exit_code == 0, r.output
    t = pq.read_table(run / "injected.parquet")
    assert tuple(t.column_names) == INJECTED_COLUMNS
    f = t.to_pandas()
    assert f.input_row.tolist() == [1, 2, 3, 4, 5]
    assert f.ts.tolist() == [1704153600 * 10**9 + k * 10**9 for k in (5, 6, 7, 8, 9)]
    assert f.symbol.tolist() == ["X"] * 5
    assert f.side.tolist() == ["sell", "buy", "buy", "sell", "sell"]
    assert f.type.tolist() == ["market", "fok", "limit", "ioc", "market"]
    assert np.isnan(f.limit_price.iloc[0]) and f.limit_price.iloc[1:4].tolist() == [102, 101,
                                                                                   105]
    assert f["size"].tolist() == [7, 11, 12, 4, 3]
    assert f.filled.tolist() == [7, 0, 8, 0, 3]
    assert f.filled_value.tolist() == [5 * 100 + 2 * 99, 0, 8 * 101, 0, 3 * 101]
    assert f.avg_price.iloc[0] == (5 * 100 + 2 * 99) / 7 and np.isnan(f.avg_price.iloc[1])
    assert f.status.tolist() == ["filled", "rejected", "partial", "no_liquidity", "filled"]
    assert f.reason.iloc[1] == "FOK: not enough executable quantity"
    assert f.reason.iloc[2] == "still resting when the replay ended"
    assert f.reason.iloc[3] == "nothing to execute against within its limit"
    assert f.reason.iloc[0] is None and f.reason.iloc[4] is None
    out = " ".join(r.output.split())
    assert "injected orders rejected: 1 of 5 (FOK: not enough executable quantity: 1)" in out
    assert ("injected orders left unfilled or partly filled: 2 of 5 (nothing to execute "
            "against within its limit: 1; still resting when the replay ended: 1)") in out


def test_a_run_whose_orders_all_fill_says_nothing_more(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("ts,instrument,side,type,price,size\n"
                      "2024-01-02T00:00:05Z,X,sell,market,,2\n")
    r = cascade("replay", _tape(tmp_path), "--inject", orders, "-o", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "injected orders" not in r.output


HEADER = b"ts,instrument,side,type,price,size\n"


@pytest.mark.parametrize(("body", "where"), [
    (b"2024-01-02T00:00:05Z,X,sell,market,,abc\n", "row 2, field 'size': 'abc' is not"),
    (b"2024-01-02T00:00:05Z,X,sell,market,,0\n", "row 2, field 'size': size must be positive"),
    (b"2024-01-02T00:00:05Z,X,sell,limit,-5,5\n", "row 2, field 'price': -5 is not a positive"),
    (b"2024-01-02T00:00:05Z,X,sell,limit,100.5,5\n", "row 2, field 'price': '100.5' is not"),
    (b"2024-01-02T00:00:05Z,X,sell,market,,100000000000000000000\n",
     "row 2, field 'size': '100000000000000000000' is out of bounds"),
    (b"not-a-time,X,sell,market,,5\n", "row 2, field 'ts'"),
    (b"2024-01-02T00:00:05Z,X,hold,market,,5\n", "row 2, field 'side'"),
    (b"2024-01-02T00:00:05Z,X,sell,stop,,5\n", "row 2, field 'type'"),
    (b"2024-01-02T00:00:06Z,X,sell,market,,5\n2024-01-02T00:00:05Z,X,sell,market,,5\n",
     "row 3, field 'ts': orders must be in time order"),
    # CP949 (EUC-KR) text is decoded: the Korean symbol is named as it was written
    ("2024-01-02T00:00:05Z,한국,sell,market,,5\n".encode("cp949"),
     "row 2, field 'instrument': unknown symbol '한국'"),
    (b"2024-01-02T00:00:05Z,X,sell,market,,5\n2024-01-02T00:00:06Z,X,\xff\xfe,market,,5\n",
     "row 3: byte 0xff is neither UTF-8 nor CP949/EUC-KR text"),
    (b"", "no orders: the file has a header and no rows"),
])
def test_a_bad_orders_file_is_one_line_naming_file_row_and_field(tmp_path, body, where):
    orders = tmp_path / "orders.csv"
    orders.write_bytes(HEADER + body)
    r = cascade("replay", _tape(tmp_path), "--inject", orders, "-o", tmp_path / "run")
    assert r.exit_code == 2, r.output
    message = " ".join(r.output.split())
    assert "orders.csv" in message and where in message, message
    assert "Traceback" not in r.output
