"""Re-testing with fresh seeds: ranking with intervals, ranking changes, drift, history."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import tuner.retesting as retesting_mod
from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs, make_run
from tuner.cli import main
from tuner.errors import InputError, RunError
from tuner.export_file import export_run
from tuner.records import Export, TopEntry, history_path
from tuner.retesting import fresh_seeds, parse_duration, read_history, retest, sweep_with_data
from tuner.runner import run_sweep
from tuner.spec import from_dict, parse_assignments
from tuner.verdict import describe, stats, summarize, updated_export


def test_stats_mean_std_and_t_interval() -> None:
    s = stats([0.7, 0.8, 0.9])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1)
    assert s.ci95 == pytest.approx([0.8 - 4.303 * 0.1 / math.sqrt(3), 0.8 + 4.303 * 0.1 / math.sqrt(3)])
    one = stats([0.5])
    assert one.std == 0.0 and one.ci95 is None  # no interval from one seed (never ±Infinity in a file)
    two = stats([0.6, 0.8])  # the smallest sample with an interval: t(0.975, 1 dof) = 12.706
    half = 12.706 * math.sqrt(0.02) / math.sqrt(2)
    assert two.std == pytest.approx(math.sqrt(0.02)) and two.ci95 == pytest.approx([0.7 - half, 0.7 + half])
    none = stats([])
    assert math.isnan(none.mean) and math.isnan(none.std) and none.ci95 is None and none.scores == []
    many = stats([float(i % 2) for i in range(100)])  # beyond the t table: the normal quantile
    assert many.ci95 == pytest.approx([0.5 - 1.96 * many.std / 10, 0.5 + 1.96 * many.std / 10])
    diverged = stats([0.5, math.inf])
    assert math.isinf(diverged.mean) and math.isnan(diverged.std) and diverged.ci95 is None
    assert s.scores == [0.7, 0.8, 0.9] and one.scores == [0.5] and two.scores == [0.6, 0.8]
    # the last row of the t table (30 degrees of freedom: 31 seeds) is used, not yet the normal quantile
    last = stats([float(i % 2) for i in range(31)])
    assert last.ci95 == pytest.approx(
        [last.mean - 2.042 * last.std / math.sqrt(31), last.mean + 2.042 * last.std / math.sqrt(31)]
    )


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


class FakeRay:
    """Ray and the trainings replaced (``cluster.connect``, ``worker.run_tasks``): each retest's
    trainings score the next of ``rounds`` (one score a call, in call order), or return
    ``error`` for a call when it is set. ``calls`` and ``shared`` keep what retest asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rounds: list[list[float]], metric: str = "val_acc") -> None:
        from tuner.ray import cluster, worker

        self.rounds, self.metric = iter(rounds), metric
        self.calls: list[list[dict[str, Any]]] = []
        self.shared: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.error: str | None = None
        monkeypatch.setattr(worker, "run_tasks", self.run_tasks)
        monkeypatch.setattr(cluster, "connect", lambda *args, **kwargs: {"CPU": 2.0})

    def run_tasks(self, fn: Any, calls: list[dict[str, Any]], shared: dict[str, Any], **kwargs: Any) -> list[Any]:
        self.calls.append(list(calls))
        self.shared.append(shared)
        self.resources.append({k: kwargs[k] for k in ("cpu", "gpu")})
        scores = next(self.rounds)
        assert len(calls) == len(scores)
        if self.error is not None:
            return [{"error": self.error}] + [{"metrics": {}, "diverged": False, "seconds": 0.1}] * (len(calls) - 1)
        test = "test_" + self.metric[4:]
        return [{"metrics": {self.metric: s, test: s}, "diverged": False, "seconds": 0.1} for s in scores]


def hand_made_export(tmp_path: Path, n: int = 1) -> Path:
    trials = [({"train.lr": 0.05 * (i + 1), "train.momentum": 0.9}, epochs(0.5, 0.6, 0.8 - 0.1 * i)) for i in range(n)]
    return export_run(make_run(tmp_path, trials))


def test_the_tolerance_given_to_retest_decides_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tolerance`` reaches the drift check (not the default): three retests of one
    configuration (Ray and the trainings replaced by known scores), each worse than the last
    by 0.05, then 0.04."""
    path = hand_made_export(tmp_path)
    FakeRay(monkeypatch, [[0.80, 0.82], [0.75, 0.77], [0.71, 0.73]])  # means 0.81, 0.76, 0.72
    assert main(["retest", str(path), "--seeds", "2"]) == 0  # the baseline
    # 0.05 worse: within a tolerance of 0.06 (the default 0.02 would call it drift)
    assert main(["retest", str(path), "--seeds", "2", "--tolerance", "0.06", "--fail-on-drift"]) == 0
    assert "DRIFT" not in capsys.readouterr().out
    # 0.04 worse: beyond 0.03
    assert main(["retest", str(path), "--seeds", "2", "--tolerance", "0.03", "--fail-on-drift"]) == 3
    assert "drift: the best val_acc went from 0.7600 to 0.7200" in capsys.readouterr().out
    history = read_history(path)
    assert [h.tolerance for h in history] == [0.02, 0.06, 0.03]
    assert [h.drift for h in history] == [False, False, True]
    assert yaml.safe_load(path.read_text())["retest"]["tolerance"] == 0.03


def test_retest_runs_each_configuration_with_fresh_seeds_and_records_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What retest hands the trainings and what it writes, without Ray: every configuration of
    the top k with every seed (never the search's seed nor an earlier retest's), the data once
    (its test split included), the sweep's resources; the history line, the re-ranked export."""
    path = hand_made_export(tmp_path, n=3)
    export = yaml.safe_load(path.read_text())
    ray = FakeRay(monkeypatch, [[0.6, 0.62, 0.9, 0.92], [0.7, 0.72, 0.71, 0.73, 0.5, 0.52]])
    avoided: list[set[int]] = []
    draw = retesting_mod.fresh_seeds
    monkeypatch.setattr(retesting_mod, "fresh_seeds", lambda n, used: avoided.append(set(used)) or draw(n, used))
    first = retest(path, seeds=2, top_k=2, write=lambda _: None)
    assert avoided[0] == {export["config"]["train"]["seed"]}  # the search's own seed, drawn or not
    (calls,) = ray.calls
    configs = [from_dict(export["config"]).base_config()]
    assert [c["seed"] for c in calls] == first.seeds * 2 and len(set(first.seeds)) == 2
    assert export["config"]["train"]["seed"] not in first.seeds
    assert [c["config"]["train"]["lr"] for c in calls] == [
        t["params"]["train.lr"] for t in export["top"][:2] for _ in "ab"
    ]
    assert all(c["metric"] == "val_acc" and c["mode"] == "max" and c["function"] for c in calls)
    assert calls[0]["config"]["model"] == configs[0]["model"]
    assert ray.shared[0]["data"].x_test is not None  # a retest reports test metrics: the test split goes along
    assert ray.resources[0] == {"cpu": 1, "gpu": 0}
    # the second of the two ranks first now, beyond noise; the export follows it
    assert [r.trial for r in first.results] == [t["trial"] for t in reversed(export["top"][:2])]
    assert first.ranking_changed and first.top_k == 2 and first.data["overrides"] == {}
    assert first.data["fingerprint"]["sha256"] and first.seconds >= 0 and first.created
    after = yaml.safe_load(path.read_text())
    assert after["params"] == export["top"][1]["params"] and after["score"] == pytest.approx(0.91)
    assert [t["trial"] for t in after["top"]] == [export["top"][i]["trial"] for i in (1, 0, 2)]
    # a second retest of all three: fresh seeds again, and new data is said
    second = retest(path, seeds=2, data={"seed": 11}, write=lambda _: None)
    assert not set(second.seeds) & set(first.seeds) and len(ray.calls[1]) == 6
    assert avoided[1] == {export["config"]["train"]["seed"], *first.seeds}  # and every earlier retest's
    assert second.data["overrides"] == {"seed": 11}
    assert "the data differs from the last retest's (fingerprint changed)" in second.messages
    assert [h.seeds for h in read_history(path)] == [first.seeds, second.seeds]


def test_a_failed_training_fails_the_retest_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hand_made_export(tmp_path)
    text = path.read_text()
    ray = FakeRay(monkeypatch, [[0.5, 0.5]])
    ray.error = "ValueError: bad batch"
    with pytest.raises(RunError, match="1 of 2 trainings failed; nothing was written") as e:
        retest(path, seeds=2, write=lambda _: None)
    assert e.value.details == ["ValueError: bad batch"]
    assert path.read_text() == text and not history_path(path).exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seeds": 1}, "--seeds: 1 must be >= 2 (a confidence interval needs two seeds)"),
        ({"top_k": 0}, "--top-k: 0 must be >= 1"),
        ({"tolerance": -0.1}, "--tolerance: -0.1 must be a finite number >= 0"),
        ({"tolerance": math.inf}, "--tolerance: inf must be a finite number >= 0"),
        ({"seeds": "3"}, "--seeds: '3' is not an integer"),
        ({"seeds": True}, "--seeds: True is not an integer"),
        ({"seeds": 10**7}, "--seeds: 10000000 must be <= 1000"),
        ({"top_k": 2.5}, "--top-k: 2.5 is not an integer"),
        ({"tolerance": "x"}, "--tolerance: 'x' is not a number"),
        ({"data": "digits"}, "--data: 'digits' must be a mapping of keys to values"),
    ],
)
def test_retest_checks_its_arguments_before_anything(
    tmp_path: Path, kwargs: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = hand_made_export(tmp_path)
    monkeypatch.setattr(retesting_mod.datasets, "load", lambda sweep: pytest.fail("data loaded"))
    with pytest.raises(InputError) as e:
        retest(path, write=lambda _: None, **kwargs)
    assert e.value.problems == [message]
    assert not history_path(path).exists()


def test_data_overrides_of_an_exports_config(tmp_path: Path) -> None:
    config = yaml.safe_load(hand_made_export(tmp_path).read_text())["config"]
    data = config["data"]
    assert sweep_with_data(config, "best.yaml: config", None).data == data
    seeded = sweep_with_data(config, "best.yaml: config", {"seed": 7}).data
    assert seeded == {**data, "seed": 7}
    # another source: the old source's options go, the split's stay
    other = sweep_with_data(config, "best.yaml: config", {"name": "digits"}).data
    assert other["name"] == "digits" and "n_features" not in other
    assert other["val_fraction"] == data["val_fraction"]
    assert sweep_with_data(config, "best.yaml: config", {"name": data["name"], "seed": 3}).data == {**data, "seed": 3}
    assert config["data"] == data  # the export's config is left as it was
    # a bad override is named as the --data option it came from; a bad config as itself
    with pytest.raises(InputError) as e:
        sweep_with_data(config, "best.yaml: config", {"flip_y": 3, "nosuch": 1})
    flip, nosuch = sorted(e.value.problems)
    assert flip == "best.yaml: --data flip_y: 3.0 must lie in [0, 1)"
    assert nosuch.startswith("best.yaml: --data nosuch: unknown key")
    with pytest.raises(InputError) as e:
        sweep_with_data({**config, "metric": 3}, "best.yaml: config", None)
    assert all(line.startswith("best.yaml: config: metric") for line in e.value.problems), e.value.problems


def test_fresh_seeds_avoid_the_used_ones_and_repeat_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    draws: list[tuple[int, int]] = []
    values = iter([5, 3, 3, 9, 5, 7, 11])

    class Fake:
        def randrange(self, lo: int, hi: int) -> int:
            draws.append((lo, hi))
            return next(values)

    monkeypatch.setattr(random, "SystemRandom", Fake)
    assert fresh_seeds(3, {5, 9}) == [3, 7, 11]
    assert set(draws) == {(1, 2**31 - 1)}  # positive 31-bit seeds: what numpy and torch take


def test_read_history_skips_a_damaged_line(tmp_path: Path) -> None:
    path = tmp_path / "best.yaml"
    assert read_history(path) == []
    entry = summarize([row("a")], [1, 2], fake_results([[0.8, 0.82]]), "val_acc", "max", [], EXPORT, 0.02)
    lines = [json.dumps(entry.to_dict()), "{not json", json.dumps({"results": []}), json.dumps(entry.to_dict())]
    history_path(path).write_text("\n".join(lines) + "\n")
    assert [h.results[0].trial for h in read_history(path)] == ["a", "a"]


def test_each_result_keeps_its_search_score_divergences_and_time() -> None:
    runs = [
        {"metrics": {"val_acc": 0.8}, "diverged": False, "seconds": 1.5},
        {"metrics": {"val_acc": 0.0}, "diverged": True, "seconds": 0.5},
        {"metrics": {}, "diverged": False, "seconds": 1.0},  # a seed that never reported the metric
        {"metrics": {"val_acc": 0.7}, "diverged": False, "seconds": 2.0},
    ]
    e = summarize([row("a"), row("b")], [1, 2], runs, "val_acc", "max", [], EXPORT, 0.02)
    a, b = e.results  # b's mean is NaN: it ranks last whatever its other seed did
    assert (a.trial, a.search_score, a.diverged, a.seconds) == ("a", 0.5, 1, 2.0)
    assert (b.trial, b.diverged, b.seconds) == ("b", 0, 3.0) and math.isnan(b.val.mean)


@pytest.mark.parametrize("mode, scores", [("max", [[0.8], [0.9]]), ("min", [[0.3], [0.2]])])
def test_with_one_seed_the_means_themselves_decide_a_ranking_change(mode: str, scores: list[list[float]]) -> None:
    e = summarize([row("a"), row("b")], [1], fake_results(scores), "val_acc", mode, [], EXPORT, 0.02)
    assert e.results[0].trial == "b" and e.results[0].val.ci95 is None and e.ranking_changed


def test_drift_exactly_at_the_tolerance_is_not_drift() -> None:
    first = summarize([row("a")], [1, 2], fake_results([[0.5, 0.5]]), "val_acc", "max", [], EXPORT, 0.25)
    later = summarize([row("a")], [3, 4], fake_results([[0.25, 0.25]]), "val_acc", "max", [first], EXPORT, 0.25)
    assert not later.drift  # 0.5 -> 0.25: exactly the tolerance (binary fractions: no rounding)


def test_configurations_without_trial_ids_are_matched_by_their_params() -> None:
    """A hand-written export may list configurations without trial ids, or only ``params``:
    they are told apart, and found again, by their params, in any key order."""
    a = TopEntry(params={"train.lr": 0.1, "train.momentum": 0.9}, score=0.7, round=1, epochs=20)
    b = TopEntry(params={"train.lr": 0.2, "train.momentum": 0.9}, score=0.6)
    export = Export(metric="val_acc", mode="max", score=0.7, params=dict(a.params), config={}, top=[a, b])
    first = summarize([a, b], [1, 2], fake_results([[0.80, 0.81], [0.60, 0.61]]), "val_acc", "max", [], export, 0.02)
    assert [r.params for r in first.results] == [a.params, b.params]
    assert first.messages[0].startswith("the best is unchanged") and not first.ranking_changed
    # again, a's params in another key order: a is still recognised as the previous best
    a2 = TopEntry(params={"train.momentum": 0.9, "train.lr": 0.1}, score=0.7)
    later = summarize(
        [b, a2], [3, 4], fake_results([[0.90, 0.91], [0.60, 0.61]]), "val_acc", "max", [first], export, 0.02
    )
    assert later.results[0].params == b.params and later.ranking_changed
    assert any(
        m.startswith('ranking changed: {"train.lr": 0.2, "train.momentum": 0.9} is now best') for m in later.messages
    )
    # the export follows the retest: its own entries kept (search score, round, epochs), with the statistics
    before = copy.deepcopy(export)
    out = updated_export(export, later)
    assert [t.params for t in out.top] == [b.params, a.params] and out.top[1].round == 1 and out.top[1].epochs == 20
    assert [t.score for t in out.top] == [0.6, 0.7] and out.score == pytest.approx(0.905)
    val = out.top[0].retest["val"]  # type: ignore[index]
    assert set(val) == {"mean", "std", "ci95"} and val["mean"] == pytest.approx(0.905)
    assert out.top[0].retest["test"]["test_acc"]["mean"] == pytest.approx(0.905)  # type: ignore[index]
    assert export == before  # the export handed in is left as it was
    # an export with params only: they are the one candidate, and the previous best
    bare = Export(metric="val_acc", mode="max", score=0.7, params=dict(a.params), config={}, top=[])
    alone = summarize(
        [TopEntry(params=dict(a2.params), score=0.7)],
        [1, 2],
        fake_results([[0.8, 0.81]]),
        "val_acc",
        "max",
        [],
        bare,
        0.02,
    )
    assert alone.messages[0].startswith("the best is unchanged")
    (entry,) = updated_export(bare, alone).top
    assert entry.params == a2.params and entry.score is None and entry.trial is None and entry.retest


def test_a_previous_best_not_re_tested_is_said() -> None:
    e = summarize([row("b")], [1, 2], fake_results([[0.8, 0.81]]), "val_acc", "max", [], EXPORT, 0.02)
    assert e.messages[0] == "the previous best (a) was not re-tested"


def test_describe_prints_the_ranking_its_test_metric_and_the_verdicts() -> None:
    runs = fake_results([[0.60, 0.62], [0.80, 0.82]])
    runs[2]["diverged"] = True
    for r in runs:
        r["metrics"]["test_loss"] = 0.5
    first = summarize([row("a"), row("b")], [1, 2], runs, "val_acc", "max", [], EXPORT, 0.02)
    lines = describe(first)
    assert lines[0] == "ranking by mean val_acc over 2 seeds (95% CI); test metrics on the held-out split:"
    assert lines[1].startswith("  1. b: val_acc 0.8100 ± 0.0141 [") and lines[1].endswith(
        "test_acc 0.8100 ± 0.0141 [0.6829, 0.9371], 1 diverged"
    )
    assert "test_loss" not in lines[1]  # the test counterpart of the metric, when there is one
    assert lines[2].startswith("  2. a: val_acc 0.6100") and "diverged" not in lines[2]
    assert lines[3:] == [f"  {m}" for m in first.messages] and not any("DRIFT" in line for line in lines)
    later = summarize([row("b")], [3, 4], fake_results([[0.5, 0.5]]), "val_acc", "max", [first], EXPORT, 0.02)
    assert describe(later)[-1] == "DRIFT: the best configuration's score got worse since the last retest"
    assert describe(later)[0].endswith("(95% CI); test metrics on the held-out split:")
    bare = summarize(
        [row("a")],
        [1, 2],
        [{"metrics": {"val_acc": 0.5}, "diverged": False, "seconds": 1.0}] * 2,
        "val_acc",
        "max",
        [],
        EXPORT,
        0.02,
    )
    assert describe(bare)[0] == "ranking by mean val_acc over 2 seeds (95% CI):"
    assert describe(bare)[1] == "  1. a: val_acc 0.5000 ± 0.0000 [0.5000, 0.5000]"


def test_a_very_long_duration_is_refused_without_parsing_it() -> None:
    with pytest.raises(InputError) as e:
        parse_duration("1" * 39 + "s")  # 40 characters
    assert e.value.problems == [
        f"--every: {'1' * 39 + 's'!r} must be a positive duration like 30s, 15m, 12h or 1d, at most 365d"
    ]
    with pytest.raises(InputError) as e:
        parse_duration("1" * 60 + "s")
    assert e.value.problems[0].startswith(f"--every: {'1' * 40!r} must be")
    assert parse_duration("1" * 5 + "s") == 11111


def test_the_smallest_arguments_retest_allows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``top_k=1`` (the best alone) and ``tolerance=0`` (any drop is drift) are allowed; the
    bounds checked before anything are ``top_k >= 1`` and ``tolerance >= 0``."""
    path = hand_made_export(tmp_path, n=3)
    ray = FakeRay(monkeypatch, [[0.7, 0.72]])
    entry = retest(path, seeds=2, top_k=1, tolerance=0.0, write=lambda _: None)
    assert len(ray.calls[0]) == 2 and entry.top_k == 1 and entry.tolerance == 0.0


def test_two_retests_ending_at_once_both_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second retest of the export runs and ends while the first trains: the first, ending
    later, finds the second's history line and section (under the export's lock) instead of
    taking itself for the baseline and overwriting them."""
    path = hand_made_export(tmp_path)
    ray = FakeRay(monkeypatch, [[0.80, 0.82], [0.70, 0.72]])
    inner: list[Any] = []
    outer_run_tasks = ray.run_tasks

    def run_tasks(fn: Any, calls: list[dict[str, Any]], shared: dict[str, Any], **kwargs: Any) -> list[Any]:
        if not inner:
            inner.append(None)
            scores = next(ray.rounds)  # the first retest's scores, drawn before the second runs
            inner.append(retest(path, seeds=2, write=lambda _: None))
            metric = ray.metric
            return [{"metrics": {metric: s, "test_acc": s}, "diverged": False, "seconds": 0.1} for s in scores]
        return outer_run_tasks(fn, calls, shared, **kwargs)

    from tuner.ray import worker

    monkeypatch.setattr(worker, "run_tasks", run_tasks)
    first = retest(path, seeds=2, write=lambda _: None)
    second = inner[1]
    assert any("first retest" in m for m in second.messages)  # it ended first: the baseline
    assert not any("first retest" in m for m in first.messages)
    assert first.drift is False  # 0.81 against the second's 0.71: better, not worse
    history = read_history(path)
    assert [h.seeds for h in history] == [second.seeds, first.seeds]
    assert yaml.safe_load(path.read_text())["retest"]["seeds"] == first.seeds


def test_a_retest_that_could_not_write_its_results_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read-only folder (os.access says so: root is never refused by the system) is bad input
    before any training, not a failure once every seed has run."""
    import os

    path = hand_made_export(tmp_path)
    text = path.read_text()
    ray = FakeRay(monkeypatch, [[0.8, 0.82]])
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != path.parent and real(p, mode, **kw))
    assert main(["retest", str(path), "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"EXPORT: {path}: no permission to write in {path.parent}"]
    assert ray.calls == [] and path.read_text() == text and not history_path(path).exists()


def _read_history_within(path: Path, seconds: float) -> Any:
    """What :func:`read_history` raised or returned, or a TimeoutError when it still waits."""
    import threading

    out: list[Any] = []

    def read() -> None:
        try:
            out.append(read_history(path))
        except InputError as e:
            out.append(e)

    thread = threading.Thread(target=read, daemon=True)  # a read of a pipe would wait for ever
    thread.start()
    thread.join(seconds)
    return out[0] if out else TimeoutError()


def test_a_history_that_is_not_a_regular_file_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    path = hand_made_export(tmp_path)
    text = path.read_text()
    os.mkfifo(history_path(path))
    error = _read_history_within(path, 10)
    assert isinstance(error, InputError)
    assert error.problems == [f"{history_path(path)}: is not a regular file (a pipe, a socket or a device)"]
    ray = FakeRay(monkeypatch, [])
    monkeypatch.setattr(retesting_mod.datasets, "load", lambda sweep: pytest.fail("data loaded"))
    with pytest.raises(InputError, match="is not a regular file"):
        retest(path, seeds=2, write=lambda _: None)
    assert ray.calls == [] and path.read_text() == text


def test_a_history_larger_than_any_of_tuners_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hand_made_export(tmp_path)
    history_path(path).write_text("{}\n" * 100)
    monkeypatch.setattr(retesting_mod, "MAX_HISTORY_BYTES", 1024 * 1024)
    assert read_history(path) == []  # damaged lines skipped, as ever
    history_path(path).write_bytes(b"{}\n" * (1024 * 1024))
    with pytest.raises(InputError) as e:
        read_history(path)
    assert e.value.problems == [
        f"{history_path(path)}: 3,145,728 bytes, more than the 1,048,576 this file may hold: not read"
    ]
    history_path(path).unlink()
    history_path(path).mkdir()
    with pytest.raises(InputError, match=r"best.retest.jsonl: cannot read \(Is a directory\)"):
        read_history(path)
