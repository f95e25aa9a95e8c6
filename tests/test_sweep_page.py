"""The sweep page and its statistics (replay/sweep/page.py, replay/sweep/stats.py), on
cells tables built by hand: no replay runs."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from replay.sweep import page as sweep_page
from replay.sweep.page import redraw, write_page
from replay.sweep.stats import bootstrap_interval, paired_differences, tail_figures
from tests.render_report import find_chromium, measure

SPEC = "/sweeps/margin.toml"


def cells(variants=("base", "strict"), tapes=("crash", "calm"), seeds=3, krx=True,
          seed=1) -> pd.DataFrame:
    """A cells table as replay.sweep.store.table writes it: the axes, status and error,
    the figures (Int64 where a venue may give none), and a SHA-256-like key per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for tape in tapes:
        for s in range(seeds):
            market = rng.uniform(0.05, 0.2)
            for k, variant in enumerate(variants):
                rows.append({
                    "variant": variant, "tape": tape, "population": "credit",
                    "mode": "relative", "seed": s, "status": "ok", "error": None,
                    "forced_volume": int(1000 * k + rng.integers(0, 500)),
                    "forced_value": float(1e6 * k + rng.uniform(0, 1e5)),
                    "max_drawdown": market + 0.01 * k + rng.uniform(0, 0.01),
                    "excess_drawdown": 0.01 * k + rng.uniform(0, 0.01),
                    "accounts_force_sold": int(k + rng.integers(0, 3)),
                    "accounts_wiped_out": 0, "broker_shortfall": 0,
                    "limit_locked_days": int(rng.integers(0, 2)) if krx else None,
                    "circuit_breakers": int(rng.integers(0, 2)) if krx else None,
                    "index_return": None,
                    "key": f"{len(rows):02x}" * 32})
    frame = pd.DataFrame(rows)
    for c in ("limit_locked_days", "circuit_breakers"):
        frame[c] = frame[c].astype("Int64")
    frame["index_return"] = frame["index_return"].astype("float64")
    return frame


def fail(frame: pd.DataFrame, row: int, error: str = "ValueError: no such symbol") -> None:
    """Mark a cell failed as the store records one: its error, no figures."""
    frame.loc[row, "status"] = "failed"
    frame.loc[row, "error"] = error
    for c in ("forced_volume", "accounts_force_sold", "limit_locked_days", "circuit_breakers"):
        frame[c] = frame[c].astype("Int64")
        frame.loc[row, c] = pd.NA
    frame.loc[row, ["forced_value", "max_drawdown", "excess_drawdown"]] = np.nan


def info_of(frame: pd.DataFrame, baseline: str = "base") -> dict:
    return {"spec": SPEC, "baseline": baseline, "cells": len(frame),
            "axes": {"variants": list(frame.variant.unique()),
                     "tapes": list(frame.tape.unique()), "populations": ["credit"],
                     "modes": ["relative"], "seeds": int(frame.seed.nunique())}}


def unpack_figures(text: str) -> dict:
    packed = re.search(r"id='packed-figures'>([^<]*)</script>", text).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def array(value) -> np.ndarray:
    """A plotly array as written: a list, or a typed array ({dtype, bdata})."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


# -- paired differences ----------------------------------------------------------------------

def test_a_variant_two_more_than_the_baseline_differs_by_two_exactly():
    frame = cells()
    strict = frame.variant == "strict"
    frame.loc[strict, "forced_volume"] = frame.loc[~strict, "forced_volume"].to_numpy() + 2
    d = paired_differences(frame, "base", "forced_volume")
    assert len(d) == 1
    row = d.iloc[0]
    assert (row.variant, row.pairs, row.left_out) == ("strict", 6, 0)
    assert (row["mean"], row.low, row.high) == (2.0, 2.0, 2.0)
    assert row.excludes_zero
    assert row.baseline_mean == pytest.approx(frame.loc[~strict, "forced_volume"].mean())


def test_pairs_are_matched_on_tape_population_mode_and_seed_not_on_row_order():
    frame = cells(seeds=4)
    strict = frame.variant == "strict"
    frame.loc[strict, "forced_volume"] = frame.loc[~strict, "forced_volume"].to_numpy() + 2
    shuffled = frame.sample(frac=1, random_state=3).reset_index(drop=True)
    d = paired_differences(shuffled, "base", "forced_volume")
    assert (d.iloc[0]["mean"], d.iloc[0].low, d.iloc[0].high) == (2.0, 2.0, 2.0)


def test_failed_and_unpaired_cells_are_left_out_and_counted():
    frame = cells(variants=("base", "strict", "loose"), seeds=4)
    base = frame[frame.variant == "base"].set_index(["tape", "seed"]).forced_volume
    for v, add in (("strict", 2), ("loose", -5)):
        mine = frame.variant == v
        frame.loc[mine, "forced_volume"] = (
            base.loc[list(zip(frame.tape[mine], frame.seed[mine], strict=True))].to_numpy() + add)
    at = frame.set_index(["variant", "tape", "seed"]).index
    # strict: its own cell failed (given a wild value, to show status decides, not NaN)...
    frame.loc[at.get_loc(("strict", "crash", 0)), ["status", "forced_volume"]] = \
        ["failed", 10**9]
    # ... its baseline partner failed ...
    fail(frame, at.get_loc(("base", "crash", 1)))
    # ... and one block has no baseline cell at all
    frame = frame.drop(index=at.get_loc(("base", "calm", 3))).reset_index(drop=True)
    d = paired_differences(frame, "base", "forced_volume").set_index("variant")
    assert list(d.index) == ["strict", "loose"]
    assert d.loc["strict", "pairs"] == 8 - 3 and d.loc["strict", "left_out"] == 3
    assert d.loc["loose", "pairs"] == 8 - 2 and d.loc["loose", "left_out"] == 2
    assert d.loc["strict", "mean"] == 2.0 and d.loc["loose", "mean"] == -5.0
    assert d.loc["loose", "high"] == -5.0


def test_a_variant_with_no_pair_has_no_mean_and_one_pair_no_interval():
    frame = cells(tapes=("crash",), seeds=2)
    fail(frame, 2)  # base, seed 1: strict has one pair left
    d = paired_differences(frame, "base", "max_drawdown").iloc[0]
    assert d.pairs == 1 and not np.isnan(d["mean"])
    assert np.isnan(d.low) and np.isnan(d.high) and not d.excludes_zero
    fail(frame, 0)
    d = paired_differences(frame, "base", "max_drawdown").iloc[0]
    assert d.pairs == 0 and d.left_out == 2 and np.isnan(d["mean"])


def test_bootstrap_interval_covers_the_mean_is_seeded_and_has_the_normal_width():
    rng = np.random.default_rng(7)
    diffs = rng.normal(0.3, 2.0, 400)
    low, high = bootstrap_interval(diffs)
    assert low < diffs.mean() < high
    assert bootstrap_interval(diffs) == (low, high)
    assert bootstrap_interval(diffs, seed=1) != (low, high)
    # for a mean of 400 draws the percentile interval is close to mean ± 1.96 s / √n
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert (low + high) / 2 == pytest.approx(diffs.mean(), abs=0.05 * half)


def test_bootstrap_in_batches_is_the_bootstrap_whole(monkeypatch):
    from replay.sweep import stats

    diffs = np.random.default_rng(2).normal(size=50)
    whole = bootstrap_interval(diffs, resamples=300)
    monkeypatch.setattr(stats, "_DRAW", 50 * 7)  # 7 resamples a batch
    assert bootstrap_interval(diffs, resamples=300) == whole


def test_two_cells_on_one_axes_are_refused():
    frame = cells()
    twice = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="share the axes variant=base, tape=crash"):
        paired_differences(twice, "base", "forced_volume")


# -- tails -------------------------------------------------------------------------------------

def test_tails_are_quantiles_and_shares_of_the_ok_cells():
    frame = cells(seeds=10)
    fail(frame, 1)
    frame.loc[3, "max_drawdown"] = 0.9  # ok, strict: a tail the quantiles must see
    t = tail_figures(frame).set_index("variant")
    for v in ("base", "strict"):
        ok = frame[(frame.variant == v) & (frame.status == "ok")]
        assert t.loc[v, "cells"] == len(ok)
        assert t.loc[v, "max_drawdown_p95"] == pytest.approx(ok.max_drawdown.quantile(0.95))
        assert t.loc[v, "max_drawdown_p99"] == pytest.approx(ok.max_drawdown.quantile(0.99))
        assert t.loc[v, "excess_drawdown_p99"] == pytest.approx(
            ok.excess_drawdown.quantile(0.99))
        assert t.loc[v, "p_limit_locked"] == pytest.approx((ok.limit_locked_days > 0).mean())
        assert t.loc[v, "p_circuit_breaker"] == pytest.approx(
            (ok.circuit_breakers > 0).mean())
    assert t.loc["strict", "cells"] == 19
    assert t.loc["strict", "max_drawdown_p99"] > 0.5


def test_tails_of_the_generic_venue_have_no_limit_or_circuit_breaker_chance():
    t = tail_figures(cells(krx=False)).set_index("variant")
    assert t.p_limit_locked.isna().all() and t.p_circuit_breaker.isna().all()
    assert (t.p_limit_locked_cells == 0).all()
    assert t.max_drawdown_p95.notna().all()


# -- the page ----------------------------------------------------------------------------------

def test_page_shows_every_variant_the_baseline_commands_and_failures(tmp_path):
    frame = cells(variants=("base", "strict", "loose"))
    fail(frame, 4, "ValueError: population credit: symbol 005930 not on tape calm")
    frame["accounts_wiped_out"] = frame["accounts_wiped_out"].astype("Int64")
    frame.loc[0, "accounts_wiped_out"] = pd.NA  # ok, but without the figure
    path = write_page(tmp_path, frame, info_of(frame))
    assert path == tmp_path / "sweep.html"
    text = path.read_text(encoding="utf-8")
    for v in ("base", "strict", "loose"):
        assert f"<td>{v}</td>" in text
    assert "Baseline: base." in text
    assert "18 cells: 17 ok, 1 failed." in text
    assert "1 cell failed: left out of every statistic" in text
    assert "population credit: symbol 005930 not on tape calm" in text
    key = frame.key[7]
    assert (f"cascade sweep {SPEC} -o {tmp_path.resolve()} --cell {key[:16]} --keep-runs"
            in text)
    assert key not in text  # the command names the cell by its first 16 hex digits
    assert text.count("<tbody id='cell-") == len(frame)
    assert "<tbody id='cell-4' class='failed'>" in text
    # figures missing or the same in every ok cell are named in a line, not drawn
    assert re.search(r"Not drawn or differenced: accounts wiped out: 0 in every ok cell that "
                     r"has it; broker shortfall \(won\): 0 in every ok cell; KOSPI close vs "
                     r"its prior close \(%\): missing in every ok cell\.", text)
    titles = [a["text"] for a in unpack_figures(text)["chart-distributions"]["layout"]
              ["annotations"]]
    assert "shares force-sold (shares)" in titles
    assert not any("wiped" in t or "shortfall" in t or "KOSPI" in t for t in titles)


def test_page_is_the_same_bytes_written_twice(tmp_path):
    frame = cells()
    fail(frame, 1)
    first = write_page(tmp_path, frame, info_of(frame)).read_bytes()
    assert write_page(tmp_path, frame, info_of(frame)).read_bytes() == first


def test_headline_states_the_largest_effect_with_its_interval(tmp_path):
    frame = cells(variants=("base", "plus2", "plus7"))
    base = frame.variant == "base"
    for v, add in (("plus2", 2), ("plus7", 7)):
        frame.loc[frame.variant == v, "forced_volume"] = \
            frame.loc[base, "forced_volume"].to_numpy() + add
    text = write_page(tmp_path, frame, info_of(frame)).read_text(encoding="utf-8")
    sentence = headline_of(text)
    assert ("for shares force-sold, the variant that differs most from base on average is "
            "plus7: +7 shares over 6 pairs (95% CI +7 shares to +7 shares, which excludes 0; "
            "with so few pairs the interval is rough)." in sentence)
    d = paired_differences(frame, "base", "excess_drawdown")
    best = d.loc[d["mean"].abs().idxmax()]
    assert f"is {best.variant}: " in sentence.split(";")[0]
    more = cells(seeds=5)  # 10 pairs
    sentence = headline_of(write_page(tmp_path, more, info_of(more)).read_text())
    assert "over 10 pairs" in sentence and "rough" not in sentence


def headline_of(text: str) -> str:
    return html.unescape(re.search(r"<p class='headline'>(.*?)</p>", text).group(1))


def test_headline_says_when_there_is_nothing_to_difference(tmp_path):
    one = cells(variants=("base",))
    assert headline_of(write_page(tmp_path, one, info_of(one)).read_text()) == \
        "The sweep has one variant, base: there is nothing to difference."
    frame = cells()
    frame["excess_drawdown"] = 0.0
    assert headline_of(write_page(tmp_path, frame, info_of(frame)).read_text()).startswith(
        "Drawdown the forced sales added is 0.00% in every ok cell; for shares "
        "force-sold, the variant that differs most from base on average is strict: ")
    for row in range(len(frame)):
        fail(frame, row)
    text = write_page(tmp_path, frame, info_of(frame)).read_text()
    assert headline_of(text) == "No cell is ok: there is nothing to measure."
    assert "12 cells: 0 ok, 12 failed." in text


def test_points_are_the_ok_cells_of_their_variant_and_carry_their_row(tmp_path):
    frame = cells(variants=("base", "strict"), seeds=4)
    fail(frame, 5)
    text = write_page(tmp_path, frame, info_of(frame)).read_text(encoding="utf-8")
    fig = unpack_figures(text)["chart-distributions"]
    panel = {a["text"]: i for i, a in enumerate(fig["layout"]["annotations"])}
    i = panel["max drawdown (%)"]
    axis = "y" if i == 0 else f"y{i + 1}"
    points = [t for t in fig["data"] if t["type"] == "scatter" and t["yaxis"] == axis]
    rows = np.concatenate([array(t["customdata"]) for t in points])
    assert sorted(rows.tolist()) == [r for r in range(len(frame)) if r != 5]
    for t in points:
        r = array(t["customdata"])
        assert (frame.variant[r] == t["name"]).all()
        assert array(t["y"]) == pytest.approx(frame.max_drawdown[r].to_numpy())


def test_a_large_sweep_lists_its_failed_cells_first_and_says_how_many(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_page, "MAX_ROWS", 5)
    frame = cells(seeds=4)  # 16 cells
    fail(frame, 12, "RuntimeError: worker lost")
    text = write_page(tmp_path, frame, info_of(frame)).read_text(encoding="utf-8")
    assert re.findall(r"<tbody id='cell-(\d+)'", text) == ["12", "0", "1", "2", "3"]
    assert "5 of 16 cells shown: the 1 failed, then the first ok ones" in text
    extra = json.loads(re.search(r"id='sweep-cells'>(.*?)</script>", text).group(1))
    assert sorted(map(int, extra)) == [r for r in range(4, 16) if r != 12]
    key16, label, status = extra["9"]
    assert key16 == frame.key[9][:16] and status == "ok"
    assert label == f"{frame.tape[9]} · credit · relative · seed {frame.seed[9]}"
    for row in (3, 8):
        fail(frame, row)
    monkeypatch.setattr(sweep_page, "MAX_ROWS", 2)
    text = write_page(tmp_path, frame, info_of(frame)).read_text(encoding="utf-8")
    assert re.findall(r"<tbody id='cell-(\d+)'", text) == ["3", "8"]
    assert ("2 of 16 cells shown: the first 2 of the 3 failed in the spec&#x27;s order"
            in text)


def test_generic_venue_page_has_no_limit_or_circuit_breaker_chance(tmp_path):
    frame = cells(krx=False)
    text = write_page(tmp_path, frame, info_of(frame)).read_text(encoding="utf-8")
    assert "limit-locked-down sessions: missing in every ok cell" in text
    assert "value force-sold (quote currency)" in text
    tails = re.search(r"<h2>Tails</h2>.*?</table>", text, re.S).group(0)
    assert tails.count("<td>–</td>") == 4


# -- redraw -------------------------------------------------------------------------------------

def test_redraw_gives_the_page_the_sweep_wrote(tmp_path):
    from replay.rundir import write_json
    from replay.sweep.store import write_table

    frame = cells()
    fail(frame, 2)
    write_table(tmp_path / "cells.parquet", frame)
    write_json(tmp_path / "sweep.json", info_of(frame))
    drawn = write_page(tmp_path, frame, info_of(frame)).read_bytes()
    (tmp_path / "sweep.html").unlink()
    assert redraw(tmp_path).read_bytes() == drawn


def test_redraw_names_the_missing_or_invalid_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "cells.parquet"))):
        redraw(tmp_path)
    (tmp_path / "cells.parquet").write_text("not parquet")
    (tmp_path / "sweep.json").write_text("{}")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'cells.parquet'}: not a")):
        redraw(tmp_path)
    from replay.sweep.store import write_table

    write_table(tmp_path / "cells.parquet", cells())
    with pytest.raises(ValueError, match=r"sweep\.json: no key spec, baseline, axes, cells"):
        redraw(tmp_path)


# -- the click, without a browser ----------------------------------------------------------------

_FAKE_DOM = """
const page = JSON.parse(require("fs").readFileSync(0, "utf8"));
const made = (tag) => ({tag, textContent: ""});
const rows = {};
for (const id of page.rows) {
  rows[id] = {classes: new Set(), scrolled: 0,
              classList: {add(c) { rows[id].classes.add(c); },
                          remove(c) { rows[id].classes.delete(c); }},
              scrollIntoView() { rows[id].scrolled++; }};
}
const box = {hidden: true, dataset: {before: page.before, after: page.after}, children: [],
             replaceChildren() { this.children = []; }, append(...c) { this.children.push(...c); }};
let click = null;
const chart = {on(event, fn) { if (event === "plotly_click") click = fn; }};
let watcher = null;
global.MutationObserver = class {
  constructor(fn) { this.fn = fn; } observe() { watcher = this; } disconnect() { watcher = null; }
};
global.document = {
  documentElement: {dataset: {plots: "loading"}},
  getElementById(id) {
    return {"sweep-cells": {textContent: page.extra}, "picked-cell": box,
            "chart-distributions": chart}[id] || rows[id] || null;
  },
  querySelectorAll(sel) { return Object.values(rows).filter((r) => r.classes.has("picked")); },
  createElement: made,
};
eval(page.script);
const hookedEarly = click !== null;
document.documentElement.dataset.plots = "drawn";
watcher.fn([], watcher);
const out = {hookedEarly, hooked: click !== null};
click({points: [{customdata: page.listed}]});
out.listed = {picked: [...rows["cell-" + page.listed].classes], scrolled:
              rows["cell-" + page.listed].scrolled, boxHidden: box.hidden};
click({points: [{customdata: page.unlisted}]});
out.unlisted = {boxHidden: box.hidden, text: box.children.map((c) => c.textContent),
                stillPicked: [...rows["cell-" + page.listed].classes]};
click({points: [{}]});  // a box, not a cell: nothing happens
console.log(JSON.stringify(out));
"""


def test_a_click_scrolls_to_a_listed_cell_and_shows_an_unlisted_one(tmp_path, monkeypatch):
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the page's script")
    monkeypatch.setattr(sweep_page, "MAX_ROWS", 4)
    frame = cells(seeds=4)
    spec = "/sweeps/KEY/margin.toml"  # the key is put in after the spec, not in it
    text = write_page(tmp_path, frame, {**info_of(frame), "spec": spec}).read_text()
    page = {"rows": re.findall(r"<tbody id='(cell-\d+)'", text), "listed": 2, "unlisted": 9,
            "extra": re.search(r"id='sweep-cells'>(.*?)</script>", text).group(1),
            "before": html.unescape(re.search(r"data-before='([^']*)'", text).group(1)),
            "after": html.unescape(re.search(r"data-after='([^']*)'", text).group(1)),
            "script": re.findall(r"<script>(.*?)</script>", text, re.S)[0]}
    assert "plotly_click" in page["script"]
    done = subprocess.run([node, "-e", _FAKE_DOM], input=json.dumps(page), text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert not out["hookedEarly"] and out["hooked"]  # hooked once the figures are drawn
    assert out["listed"] == {"picked": ["picked"], "scrolled": 1, "boxHidden": True}
    assert out["unlisted"]["boxHidden"] is False
    assert out["unlisted"]["stillPicked"] == []
    line, command = out["unlisted"]["text"]
    assert line.startswith(f"cell 10: {frame.tape[9]} · credit · relative · seed "
                           f"{frame.seed[9]}, ok, key {frame.key[9][:16]}")
    assert command == (f"cascade sweep {spec} -o {tmp_path.resolve()} --cell "
                       f"{frame.key[9][:16]} --keep-runs")


# -- the click, in a browser -----------------------------------------------------------------------

#: Scroll to the ``nth`` point of variant ``variant`` in the panel ``panel`` and click it as a
#: mouse does (move, press, release on plotly's drag layer); returns the rows picked in the
#: table, the point's row as plotly reports it, and the box shown for an unlisted cell.
_CLICK = """(() => {
  const gd = document.getElementById("chart-distributions");
  const k = gd.data.findIndex((t) => t.type === "scatter" && t.name === VARIANT &&
                                     t.yaxis === AXIS);
  const trace = [...gd.querySelectorAll(".scatterlayer .trace")]
    .find((t) => t.__data__ && t.__data__[0] && t.__data__[0].trace.index === k);
  const point = trace.querySelectorAll("path.point")[NTH];
  point.scrollIntoView({block: "center"});
  const r = point.getBoundingClientRect();
  const at = {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true,
              cancelable: true, view: window, buttons: 1};
  const layer = document.elementFromPoint(at.clientX, at.clientY);
  for (const kind of ["mousemove", "mousedown", "mouseup"]) {
    layer.dispatchEvent(new MouseEvent(kind, at));
  }
  const box = document.getElementById("picked-cell");
  return JSON.stringify({
    picked: [...document.querySelectorAll("tbody.picked")].map((t) => t.id),
    hovered: (gd._hoverdata || []).map((p) => p.customdata),
    box: box.hidden ? null : box.textContent});
})()"""


@pytest.mark.skipif(find_chromium() is None, reason="no chromium, chromium-browser or "
                    "google-chrome on PATH (or CASCADE_CHROMIUM)")
@pytest.mark.parametrize("listed", [True, False])
def test_clicking_a_point_in_chromium_picks_its_cell(tmp_path, monkeypatch, listed):
    if not listed:
        monkeypatch.setattr(sweep_page, "MAX_ROWS", 3)
    frame = cells(seeds=4)
    path = write_page(tmp_path, frame, info_of(frame))
    script = (_CLICK.replace("VARIANT", json.dumps("strict")).replace("AXIS", '"y3"')
              .replace("NTH", "5"))
    value, errors = measure(path, script)
    assert not errors
    out = json.loads(value)
    (row,) = out["hovered"]
    # the 6th point of strict's trace in the third panel is strict's 6th ok cell
    assert row == frame.index[frame.variant == "strict"][5]
    if listed:
        assert out == {"picked": [f"cell-{row}"], "hovered": [row], "box": None}
    else:
        assert out["picked"] == [] and f"key {frame.key[row][:16]}" in out["box"]
        assert f"--cell {frame.key[row][:16]} --keep-runs" in out["box"]
