from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def unwind_tape(tmp_path_factory) -> Path:
    """The small-cap CFD unwind scenario's tape, made once by the command line: five KRX
    days, seed 5, a -12% news gap before day 2 (brokers/examples, docs/brokers.md)."""
    from typer.testing import CliRunner

    from replay.cli import app

    path = tmp_path_factory.mktemp("unwind") / "unwind.parquet"
    r = CliRunner().invoke(app, ["data", "synth", "--profile", "krx-smallcap", "--days", "5",
                                 "--seed", "5", "--shock", "1:-0.12", "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path
