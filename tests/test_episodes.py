"""The bundled episodes (replay/episodes, docs/episodes.md): listed, their facts cited, and
one short run whose reported-vs-simulated table holds every fact with its gap."""

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.episodes import list_episodes, load_episode
from replay.market import knot_series, parse_index_knot

ROOT = Path(__file__).resolve().parent.parent
CITE = re.compile(r"^docs/reference/krx\.md:(\d+)(?:-(\d+))?$")


def test_episode_list_shows_the_three_bundled_episodes():
    r = CliRunner().invoke(app, ["episode", "list"])
    assert r.exit_code == 0, r.output
    for name in ("2024-08-05", "2023-04-cfd", "2023-10-youngpoong"):
        assert name in r.output
    assert list_episodes() == ["2023-04-cfd", "2023-10-youngpoong", "2024-08-05"]


@pytest.mark.parametrize("name", ["2024-08-05", "2023-04-cfd", "2023-10-youngpoong"])
def test_each_episode_parses_and_its_facts_cite_lines_that_exist(name):
    ep = load_episode(name)
    lines = (ROOT / "docs" / "reference" / "krx.md").read_text(encoding="utf-8").splitlines()
    assert ep.facts and all(b.exists() for b in ep.bars)
    for f in ep.facts:
        m = CITE.match(f["source"])
        assert m, f"{name}: {f['fact']}: source {f['source']!r} is not docs/reference/krx.md:N"
        first, last = int(m[1]), int(m[2] or m[1])
        assert all(lines[n - 1].strip() for n in range(first, last + 1)), f["source"]


def test_an_unknown_override_or_episode_is_an_error_naming_it():
    with pytest.raises(ValueError, match="nosuch"):
        load_episode("nosuch")
    with pytest.raises(ValueError, match="--set colour"):
        load_episode("2024-08-05", {"colour": "red"})
    assert load_episode("2024-08-05", {"broker.0.cure_max_loss": "0.2"}).brokers[0]["set"][-1] \
        == "cure_max_loss=0.2"


def test_an_index_knot_is_parsed_and_the_factor_passes_through_its_knots():
    day, t, r = parse_index_knot("2024-08-05,14:14:30,-0.081")
    assert (day, t, r) == (date(2024, 8, 5), (5 * 3600 + 14 * 60 + 30) * 10**9, -0.081)
    with pytest.raises(ValueError, match="outside 09:00-15:20"):
        parse_index_knot("2024-08-05,08:00:00,-0.01")
    grid = np.arange(0, 381 * 60 * 10**9, 60 * 10**9, dtype=np.int64)
    knots = [(0, -0.02), (200 * 60 * 10**9, -0.1), (380 * 60 * 10**9, -0.06)]
    m = knot_series(grid, knots, np.random.Generator(np.random.PCG64(1)))
    at = [int(np.searchsorted(grid, t)) for t, _ in knots]
    scale = m[at[0]] / -0.02
    assert np.allclose(m[at], [scale * r for _, r in knots])  # the bridge is pinned there
    assert int(np.argmin(m)) == pytest.approx(at[1], abs=15)  # the low near the low knot


def test_a_short_run_writes_every_fact_with_its_gap_and_the_misu_peak_after_the_crash(
        tmp_path):
    out = tmp_path / "aug"
    r = CliRunner().invoke(app, ["episode", "run", "2024-08-05", "--top", "5", "--set",
                                 "days=3", "--set", "accounts=2000", "--set", "rate=20",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "reported vs simulated" in r.output
    ep = load_episode("2024-08-05")
    table = pd.read_csv(out / "reported_vs_simulated.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["fact", "reported", "simulated", "gap", "unit", "note"]
    assert table["fact"].tolist() == [f["fact"] for f in ep.facts]  # none left out
    assert (pd.read_json(out / "reported_vs_simulated.json")["fact"] == table["fact"]).all()
    for row in table.itertuples():
        assert row.note  # every row says where it comes from
        if row.simulated == "n/a":
            assert row.gap == ""
        elif row.unit == "time":
            def minutes(t):
                h, m, s = (int(x) for x in t.split(":"))
                return h * 60 + m + s / 60
            assert float(row.gap) == pytest.approx(minutes(row.simulated)
                                                   - minutes(row.reported), abs=0.01)
        elif row.unit != "day":
            assert float(row.gap) == pytest.approx(float(row.simulated) - float(row.reported),
                                                   abs=1e-3)
    by = table.set_index("fact")
    # three sessions run (8/5..8/7): the facts of 8/8 and 8/9 are n/a, not zero
    assert by.loc["미수 forced sales, 08/08", "simulated"] == "n/a"
    peak = by.loc["day of the 미수 forced-sale peak", "simulated"]
    assert date.fromisoformat(peak) > date(2024, 8, 5)  # D+3: sold after the crash day
    assert (out / "summary.json").exists() and (out / "forced_orders.parquet").exists()
    # the run's population spec reads bars that are there beside it
    assert 'bars = "bars.csv"' in (out / "population.toml").read_text(encoding="utf-8")
    assert len(pd.read_csv(out / "bars.csv", dtype={"code": str})["code"].unique()) == 5


def test_attribute_solves_the_days_in_order_to_a_tick_of_the_observed_closes(tmp_path):
    out = tmp_path / "aug"
    r = CliRunner().invoke(app, ["episode", "run", "2024-08-05", "--attribute", "-o",
                                 str(out)])  # as shipped: 33 names, 5 days
    assert r.exit_code == 0, r.output
    att = json.loads((out / "attribution" / "attribution.json").read_text())
    assert att["converged"] is True
    table = pd.read_csv(out / "attribution" / "attribution.csv", dtype={"code": str})
    assert len(table) == 33 * 5 and (table.gap_ticks <= 1).all()
    # nothing is forced on 8/5 itself (calls and unpaid 미수 sell at 8/6's pre-open): its
    # exogenous closes are the observed ones, and some later close is not
    first = table[table.date == "2024-08-05"]
    assert (first.exogenous_close == first.observed_close).all()
    assert (table.exogenous_close != table.observed_close).any()
    # once a day is within the tolerance it stays there: days are solved in order
    open_days = [sorted({w["date"] for w in h["not_converged"]}) for h in att["history"]]
    fronts = [d[0] for d in open_days if d]
    assert fronts == sorted(fronts)
    assert "converged in" in " ".join(r.output.split())
