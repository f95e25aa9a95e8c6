"""The cascade command line, end to end on real and synthetic data."""

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import F_LAST, Tape

runner = CliRunner()


def cascade(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_import_check_and_book_on_the_cme_sample(data_dir, tmp_path):
    tape = tmp_path / "esh4.parquet"
    r = cascade("data", "import", "--format", "dbn",
                data_dir / "esh4-glbx-mdp3-20231224.mbo.dbn.zst", "-o", tape)
    assert r.exit_code == 0, r.output
    assert "8,725 events of ESH4" in r.output
    r = cascade("data", "check", "--json", tape)
    report = json.loads(r.output)
    assert report["rows"] == 8725 and report["instruments"] == ["ESH4"]
    assert report["problems"]["unsorted_ts"] == 0
    assert r.exit_code == (1 if any(report["problems"].values()) else 0)
    book = tmp_path / "book.parquet"
    r = cascade("book", tape, "--levels", "5", "-o", book)
    assert r.exit_code == 0, r.output
    table = pq.read_table(book)
    events = Tape(tape).read()
    assert table.num_rows == int((events.flags & F_LAST > 0).sum())
    assert "ask_sz_4" in table.column_names


def test_malformed_csv_is_rejected_with_file_row_and_field(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,instrument,action,side,price,size,order_id\n"
                   "1722816000000001000,X,A,B,100.5,10,1\n"
                   "1722816000000002000,X,A,B,abc,10,2\n")
    r = cascade("data", "import", "--format", "csv", bad, "-o", tmp_path / "t.parquet")
    assert r.exit_code == 2
    message = " ".join(r.output.split())
    assert "bad.csv" in message and "row 3" in message and "price" in message
    assert not (tmp_path / "t.parquet").exists()


def test_replay_with_injected_orders_writes_a_run_directory(tmp_path):
    tape = tmp_path / "small.csv"
    tape.write_text("ts,instrument,action,side,price,size,order_id\n"
                    "2024-01-02T00:00:01Z,X,A,B,100,5,1\n"
                    "2024-01-02T00:00:02Z,X,A,B,99,5,2\n"
                    "2024-01-02T00:00:03Z,X,A,A,101,5,3\n"
                    "2024-01-02T00:00:09Z,X,C,B,100,5,1\n")
    pq_tape = tmp_path / "small.parquet"
    assert cascade("data", "import", "--format", "csv", tape, "-o", pq_tape).exit_code == 0
    orders = tmp_path / "sell.csv"
    orders.write_text("ts,instrument,side,type,price,size\n"
                      "2024-01-02T00:00:05Z,X,sell,market,,7\n")
    run = tmp_path / "run"
    r = cascade("replay", pq_tape, "--mode", "absolute", "--inject", orders, "-o", run,
                "--seed", 9)
    assert r.exit_code == 0, r.output
    fills = pq.read_table(run / "fills.parquet").to_pandas()
    assert fills.price_natural.tolist() == [100.0, 99.0]
    assert fills["size"].tolist() == [5, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mode"] == "absolute" and summary["seed"] == 9
    assert summary["events_processed"] == 4
    assert summary["counters"]["consumed_noop"] == 1
    assert "numba" in summary["versions"]
    injected = pq.read_table(run / "injected.parquet").to_pandas()
    assert injected.status.tolist() == ["filled"] and injected.filled.tolist() == [7]


def test_generative_replay_from_the_command_line(tmp_path):
    r = cascade("replay", "--mode", "generative", "--profile", "krx-smallcap", "--seed", 4,
                "-o", tmp_path / "gen")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "gen" / "summary.json").read_text())
    assert summary["mode"] == "generative" and summary["events_processed"] > 100_000


def test_modes_that_need_a_tape_say_so():
    r = cascade("replay", "--mode", "relative", "-o", "unused")
    assert r.exit_code == 2 and "give TAPE" in r.output


def test_repairs_made_at_import_are_counted_by_data_check(tmp_path):
    src = tmp_path / "unsorted.csv"
    src.write_text("ts,instrument,action,side,price,size,order_id\n"
                   "1722816000000002000,X,A,B,100,5,1\n"
                   "1722816000000001000,X,A,A,101,5,2\n")
    tape = tmp_path / "t.parquet"
    r = cascade("data", "import", "--format", "csv", src, "-o", tape)
    assert r.exit_code == 2 and "row 3" in " ".join(r.output.split())
    r = cascade("data", "import", "--format", "csv", "--repair", src, "-o", tape)
    assert r.exit_code == 0, r.output
    report = json.loads(cascade("data", "check", "--json", tape).output)
    assert report["repairs_at_import"] == {"unsorted_ts": 1}
    assert report["problems"]["unsorted_ts"] == 0  # the tape itself is now in order


def test_unknown_format_is_a_clear_error(tmp_path):
    r = cascade("data", "import", "--format", "kdb", tmp_path / "x", "-o", tmp_path / "y")
    assert r.exit_code == 2 and "unknown format 'kdb'" in r.output
