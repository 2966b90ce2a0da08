"""Re-testing with fresh seeds: ranking with intervals, ranking changes, drift, history."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs, make_run
from tuner.cli import main
from tuner.errors import InputError
from tuner.export_file import export_run
from tuner.records import Export, TopEntry, history_path
from tuner.retesting import parse_duration, read_history, retest, stats, summarize
from tuner.runner import run_sweep
from tuner.spec import from_dict, parse_assignments


def test_stats_mean_std_and_t_interval() -> None:
    s = stats([0.7, 0.8, 0.9])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1)
    assert s.ci95 == pytest.approx([0.8 - 4.303 * 0.1 / math.sqrt(3), 0.8 + 4.303 * 0.1 / math.sqrt(3)])
    one = stats([0.5])
    assert one.std == 0.0 and one.ci95 is None  # no interval from one seed (never ±Infinity in a file)


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("15m", 900), ("12h", 43200), ("1d", 86400), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["12", "h", "0s", "-1h", "3 weeks"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError, match="--every: .* must be a positive duration"):
        parse_duration(text)


def test_data_overrides_are_typed() -> None:
    assert parse_assignments(["seed=7", "path=x.npz", "iid_noise_scale=0.05"], "--data") == {
        "seed": 7,
        "path": "x.npz",
        "iid_noise_scale": 0.05,
    }
    with pytest.raises(InputError, match="--data: 'seed' must be KEY=VALUE"):
        parse_assignments(["seed"], "--data")


def row(name: str) -> TopEntry:
    return TopEntry(params={"train.lr": 0.1}, score=0.5, trial=name)


def fake_results(per_candidate: list[list[float]], metric: str = "val_acc") -> list[dict[str, Any]]:
    test = "test_" + metric[4:]
    return [
        {"metrics": {metric: s, test: s}, "diverged": False, "seconds": 1.0} for scores in per_candidate for s in scores
    ]


EXPORT = Export(metric="val_acc", mode="max", score=0.5, params={}, config={}, top=[row("a"), row("b")])


def test_ranking_changes_only_beyond_noise() -> None:
    cands = [row("a"), row("b")]
    # b is clearly better than the search's best a: a ranking change
    e = summarize(
        cands, [1, 2, 3], fake_results([[0.60, 0.61, 0.62], [0.80, 0.81, 0.79]]), "val_acc", "max", [], EXPORT, 0.02
    )
    assert [r.trial for r in e.results] == ["b", "a"] and e.ranking_changed and not e.drift
    assert any(m.startswith("ranking changed: b is now best") for m in e.messages)
    assert e.results[0].test["test_acc"].mean == pytest.approx(0.80)
    # b ahead by less than the noise: no ranking change, said so
    e = summarize(
        cands, [1, 2, 3], fake_results([[0.60, 0.70, 0.80], [0.62, 0.72, 0.80]]), "val_acc", "max", [], EXPORT, 0.02
    )
    assert e.results[0].trial == "b" and not e.ranking_changed
    assert any("within noise" in m for m in e.messages)
    # for a loss, lower is better
    e = summarize(
        cands, [1, 2], fake_results([[0.5, 0.51], [0.2, 0.21]], "val_loss"), "val_loss", "min", [], EXPORT, 0.02
    )
    assert e.results[0].trial == "b" and e.ranking_changed


@pytest.mark.parametrize(
    "metric, mode, before, after, drift",
    [
        ("val_acc", "max", [0.80, 0.82], [0.80, 0.81], False),
        ("val_acc", "max", [0.80, 0.82], [0.70, 0.71], True),
        ("val_acc", "max", [0.80, 0.82], [0.90, 0.91], False),  # better is never drift
        # at the tolerance ± ε: from 0.81, a drop of 0.0199 is within 0.02, a drop of 0.0201 is drift
        ("val_acc", "max", [0.80, 0.82], [0.7901, 0.7901], False),
        ("val_acc", "max", [0.80, 0.82], [0.7899, 0.7899], True),
        # a minimised metric drifts when it rises
        ("val_loss", "min", [0.30, 0.32], [0.40, 0.42], True),
        ("val_loss", "min", [0.30, 0.32], [0.20, 0.22], False),
        ("val_loss", "min", [0.30, 0.32], [0.3299, 0.3299], False),
        ("val_loss", "min", [0.30, 0.32], [0.3301, 0.3301], True),
    ],
)
def test_drift_is_the_best_getting_worse_beyond_tolerance_in_the_metrics_direction(
    metric: str, mode: str, before: list[float], after: list[float], drift: bool
) -> None:
    first = summarize([row("a")], [1, 2], fake_results([before], metric), metric, mode, [], EXPORT, 0.02)
    assert not first.drift and "baseline" in first.messages[-1]
    later = summarize([row("a")], [3, 4], fake_results([after], metric), metric, mode, [first], EXPORT, 0.02)
    assert later.drift is drift
    assert any(m.startswith(f"drift: the best {metric} went from") for m in later.messages) is drift
    # the tolerance is the one given: a huge one flags nothing, zero flags any worsening
    assert not summarize([row("a")], [3, 4], fake_results([after], metric), metric, mode, [first], EXPORT, 1.0).drift
    worse = (sum(after) - sum(before)) * (1 if mode == "min" else -1) > 0
    assert (
        summarize([row("a")], [3, 4], fake_results([after], metric), metric, mode, [first], EXPORT, 0.0).drift is worse
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    """A real tiny sweep's export (scheduler none: every trial finished)."""
    tmp = tmp_path_factory.mktemp("retest")
    sweep = from_dict(
        tiny_sweep(**{"scheduler.name": "none", "search.num_samples": 3, "data.n_samples": 400, "data.flip_y": 0.0}),
        source="tiny.yaml",
    )
    summary = run_sweep(sweep, storage=tmp, write=lambda _: None)
    return summary.export_path  # type: ignore[return-value]


def test_retest_end_to_end_then_drift_on_new_data(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = yaml.safe_load(exported.read_text())
    entry = retest(exported, seeds=2, top_k=2, write=lambda _: None)
    assert len(entry.seeds) == 2 and entry.seeds[0] != before["config"]["train"]["seed"]
    assert [len(r.val.scores) for r in entry.results] == [2, 2]
    assert all(0.0 <= r.test["test_acc"].mean <= 1.0 and r.test["test_loss"].mean > 0 for r in entry.results)
    assert not entry.drift
    after = yaml.safe_load(exported.read_text())
    assert after["retest"]["seeds"] == entry.seeds
    assert after["params"] == entry.results[0].params and after["score"] == entry.results[0].val.mean
    assert [t["trial"] for t in after["top"][:2]] == [r.trial for r in entry.results]
    assert "retest" in after["top"][0] and len(after["top"]) == len(before["top"])
    assert from_dict(after["config"]).train["lr"] == after["params"]["train.lr"]
    assert len(read_history(exported)) == 1
    # a new data snapshot with heavy label noise: the same configs score far lower -> drift, exit 3
    code = main(["retest", str(exported), "--seeds", "2", "--top-k", "1", "--data", "flip_y=0.6", "--fail-on-drift"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "DRIFT" in out and "the data differs from the last retest's" in out
    history = [json.loads(line) for line in history_path(exported).read_text().splitlines()]
    assert len(history) == 2 and history[1]["drift"] and history[1]["data"]["overrides"] == {"flip_y": 0.6}
    # without --fail-on-drift the same finding exits 0
    assert main(["retest", str(exported), "--seeds", "2", "--top-k", "1", "--data", "flip_y=0.0"]) == 0


def test_retest_bad_input_exits_2_and_writes_nothing(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = exported.read_text()
    hist = history_path(exported)
    lines = hist.read_text() if hist.exists() else ""
    for args, expected in [
        (["--data", "flip_y=3"], f"{exported}: --data flip_y: 3.0 must lie in [0, 1)"),
        (["--data", "nosuch=1"], f"{exported}: --data nosuch: unknown key"),
        (["--every", "soon"], "--every: 'soon' must be a positive duration"),
        (["--seeds", "1"], "tuner retest: argument --seeds: 1 must be >= 2"),
        (["--tolerance", "nan"], "tuner retest: argument --tolerance: 'nan' must be a finite number"),
    ]:
        assert main(["retest", str(exported), *args]) == 2
        assert capsys.readouterr().err.startswith(expected)
    assert exported.read_text() == text and (hist.read_text() if hist.exists() else "") == lines
    assert main(["retest", str(tmp_path / "absent.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'absent.yaml'}: no such file"


def test_retest_of_a_hand_made_export(tmp_path: Path, ray_session: None) -> None:
    """Candidates come from the export's top; an export without top re-tests its params."""
    run_dir = make_run(tmp_path, [({"train.lr": 0.05, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    path = export_run(run_dir)
    data = yaml.safe_load(path.read_text())
    data.pop("top")
    path.write_text(yaml.safe_dump(data))
    entry = retest(path, seeds=2, write=lambda _: None)
    assert len(entry.results) == 1 and entry.results[0].params == {"train.lr": 0.05, "train.momentum": 0.9}
