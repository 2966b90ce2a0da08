"""The Optuna journal: the mapping of parameters, values and states, read back with Optuna;
batching, resuming and a failing file; a real sweep's journal against its result.json; and
optuna-dashboard loading it."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import ray.cloudpickle as cloudpickle
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tuner.journal import Journal, choice, distribution, end_state, trial_params
from tuner.records import JOURNAL_FILE, ROUND_KEY
from tuner.space import Parameter

PARAMS = [
    Parameter("train.lr", "log_uniform", 1e-4, 1.0),
    Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999),
    Parameter("train.wd", "uniform", 0.0, 0.1),
    Parameter("train.batch_size", "int_log_uniform", 16, 256),
    Parameter("model.depth", "int_uniform", 1, 4),
    Parameter("model.hidden", values=([64, 64], [100, 100])),
    Parameter("train.optimizer", values=("sgd", "adam")),
]


def load(path: Path, study: str = "run") -> optuna.Study:
    return optuna.load_study(study_name=study, storage=JournalStorage(JournalFileBackend(str(path))))


def by_key(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["ray_trial_id"]: t for t in study.get_trials(deepcopy=False)}


def test_each_distribution_on_its_scale() -> None:
    d = {p.path: distribution(p) for p in PARAMS}
    assert d["train.lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert d["train.momentum"] == FloatDistribution(0.9, 0.999)  # β itself, linear
    assert d["train.wd"] == FloatDistribution(0.0, 0.1)
    assert d["train.batch_size"] == IntDistribution(16, 256, log=True)
    assert d["model.depth"] == IntDistribution(1, 4)
    assert d["model.hidden"] == CategoricalDistribution(["[64, 64]", "[100, 100]"])
    assert d["train.optimizer"] == CategoricalDistribution(["sgd", "adam"])
    assert choice([64, 64]) == "[64, 64]" and json.loads(choice([64, 64])) == [64, 64]
    assert choice({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert [choice(v) for v in (None, True, 3, 0.5, "x")] == [None, True, 3, 0.5, "x"]


def test_a_trials_params_widen_to_a_value_at_an_edge_and_leave_out_what_does_not_fit() -> None:
    config = {
        "train.lr": 1.0000000000000002,  # 10 ** log10(1.0): a rounding edge
        "train.momentum": 0.95,
        "train.wd": float("nan"),  # not a value: left out
        "train.batch_size": 32,
        "model.depth": 2.0,
        "model.hidden": [128, 128],  # not a choice: left out
        ROUND_KEY: 1,
    }
    values, dists = trial_params(PARAMS, config)
    assert values == {"train.lr": 1.0000000000000002, "train.momentum": 0.95, "train.batch_size": 32, "model.depth": 2}
    assert dists["train.lr"].high == 1.0000000000000002 and dists["train.lr"].log
    assert isinstance(values["model.depth"], int)
    assert set(values) == set(dists)


def test_end_states() -> None:
    assert end_state("finished", {1: 0.5, 2: 0.7}) == ("COMPLETE", 0.7)
    assert end_state("stopped", {1: 0.5}) == ("PRUNED", 0.5)  # as Optuna records a pruned trial
    assert end_state("stopped", {}) == ("PRUNED", None)
    assert end_state("finished", {}) == ("PRUNED", None)  # nothing to rank it by
    assert end_state("diverged", {1: 0.5}) == ("FAIL", None)
    assert end_state("error", {1: 0.5}) == ("FAIL", None)


def journal(tmp_path: Path, **kw: Any) -> Journal:
    args: dict[str, Any] = {"study": "run", "metric": "val_acc", "mode": "max", "params": PARAMS[:2], "max_t": 3}
    args.update(kw)
    j = Journal(tmp_path / JOURNAL_FILE, **args)
    j.prepare()
    return j


CONFIG = {"train.lr": 0.01, "train.momentum": 0.99, ROUND_KEY: 0}


def test_trials_read_back_with_optuna(tmp_path: Path) -> None:
    j = journal(tmp_path)
    for key in "abcde":
        j.started(key, {**CONFIG, ROUND_KEY: 1 if key == "e" else 0})
    for epoch in (1, 2, 3):
        j.reported("a", CONFIG, {"epoch": epoch, "val_acc": 0.1 * epoch})
    j.ended("a", CONFIG, {"epoch": 3, "val_acc": 0.3})
    j.reported("b", CONFIG, {"epoch": 1, "val_acc": 0.05})
    j.ended("b", CONFIG, {"epoch": 1, "val_acc": 0.05})  # ASHA stopped it at its first rung
    j.reported("c", CONFIG, {"epoch": 1, "val_acc": 0.2})
    j.reported("c", CONFIG, {"epoch": 2, "val_acc": 0.0, "diverged": True})  # the worst value: a stand-in
    j.ended("c", CONFIG, {"epoch": 2, "val_acc": 0.0, "diverged": True})
    j.reported("d", CONFIG, {"epoch": 1, "val_acc": 0.4})
    j.ended("d", CONFIG, {"epoch": 1, "val_acc": 0.4}, error=True)
    j.reported("e", CONFIG, {"epoch": 1, "val_acc": 0.6})
    j.flush()

    study = load(tmp_path / JOURNAL_FILE)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.user_attrs["metric"] == "val_acc"
    t = by_key(study)
    assert [t[k].state for k in "abcde"] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
        TrialState.FAIL,
        TrialState.RUNNING,
    ]
    assert t["a"].value == pytest.approx(0.3) and t["a"].intermediate_values == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    assert t["b"].value == 0.05 and t["c"].value is None and t["c"].intermediate_values == {1: 0.2}
    assert [t[k].user_attrs.get("status") for k in "abcde"] == ["finished", "stopped", "diverged", "error", None]
    assert t["a"].user_attrs["epochs"] == 3 and t["e"].user_attrs["round"] == 1 and t["a"].user_attrs["round"] == 0
    assert t["a"].params == {"train.lr": 0.01, "train.momentum": 0.99}
    assert t["a"].distributions["train.lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert t["a"].datetime_start is not None and t["a"].datetime_complete is not None


def test_epochs_are_appended_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = journal(tmp_path, max_t=50)
    for key in "ab":
        j.started(key, CONFIG)
    j.flush()  # each new trial is one append: Optuna hands out its id
    syncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real(fd)))
    for epoch in range(1, 51):
        for key in "ab":
            j.reported(key, CONFIG, {"epoch": epoch, "val_acc": epoch / 100})
    j.ended("a", CONFIG, {"epoch": 50})
    j.flush(force=False)  # the last write is under a second old: held
    assert syncs == []
    j.flush()
    assert len(syncs) == 1  # 100 epochs, an end and its attributes: one append
    t = by_key(load(tmp_path / JOURNAL_FILE))
    assert len(t["a"].intermediate_values) == len(t["b"].intermediate_values) == 50
    assert (t["a"].state, t["a"].value, t["b"].state) == (TrialState.COMPLETE, 0.5, TrialState.RUNNING)


def test_a_resumed_run_goes_on_with_the_trials_written_before(tmp_path: Path) -> None:
    j = journal(tmp_path)
    j.started("a", CONFIG)
    j.reported("a", CONFIG, {"epoch": 1, "val_acc": 0.5})
    j.started("f", CONFIG)
    j.reported("f", CONFIG, {"epoch": 1, "val_acc": 0.1})
    j.ended("f", CONFIG, {"epoch": 1}, error=True)
    j.flush()
    # the driver was killed; Tune unpickles the callback's journal (no storage, nothing known)
    again = cloudpickle.loads(cloudpickle.dumps(j))
    assert again._storage is None and again._trials == {}
    again.prepare()
    again.started("a", CONFIG)  # restored from its checkpoint: epoch 1 again, then on
    for epoch in (1, 2, 3):
        again.reported("a", CONFIG, {"epoch": epoch, "val_acc": 0.5 + epoch / 10})
    again.ended("a", CONFIG, {"epoch": 3})
    again.started("f", CONFIG)  # a failed trial resumed: a new attempt of it
    again.reported("f", CONFIG, {"epoch": 1, "val_acc": 0.2})
    again.flush()
    trials = load(tmp_path / JOURNAL_FILE).get_trials(deepcopy=False)
    assert [(t.user_attrs["ray_trial_id"], t.state) for t in trials] == [
        ("a", TrialState.COMPLETE),
        ("f", TrialState.FAIL),
        ("f", TrialState.RUNNING),
    ]
    assert trials[0].intermediate_values == pytest.approx({1: 0.6, 2: 0.7, 3: 0.8})
    assert trials[2].intermediate_values == {1: 0.2} and trials[2].params == trials[1].params


def test_a_journal_that_cannot_be_written_is_logged_once_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / JOURNAL_FILE).mkdir()  # a folder where the file should be
    with caplog.at_level(logging.WARNING, logger="tuner.journal"):
        j = journal(tmp_path)
        j.started("a", CONFIG)
        j.reported("a", CONFIG, {"epoch": 1, "val_acc": 0.5})
        j.flush()
        j.flush()
    assert j.broken
    assert [r.getMessage() for r in caplog.records if "Optuna journal" in r.getMessage()] == [
        f"the Optuna journal {tmp_path / JOURNAL_FILE} is not written any more: IsADirectoryError: "
        f"[Errno 21] Is a directory: '{tmp_path / JOURNAL_FILE}'"
    ]


def test_the_tune_callback_feeds_the_journal_and_is_pickled_without_its_file(tmp_path: Path) -> None:
    from tuner.ray.callbacks import JournalCallback

    cb = JournalCallback(journal(tmp_path, max_t=2))
    trial = SimpleNamespace(trial_id="t1", config=dict(CONFIG), last_result={})
    cb.setup()
    cb.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        trial.last_result = {"epoch": epoch, "val_acc": 0.3 * epoch, "training_iteration": epoch}
        cb.on_trial_result(0, [trial], trial, trial.last_result)
    cb.on_step_end(0, [trial])
    cb.on_trial_complete(0, [trial], trial)
    failed = SimpleNamespace(trial_id="t2", config=dict(CONFIG), last_result={})
    cb.on_trial_start(0, [trial, failed], failed)
    cb.on_trial_error(0, [trial, failed], failed)
    cb.on_experiment_end([trial, failed])
    t = by_key(load(tmp_path / JOURNAL_FILE))
    assert t["t1"].state == TrialState.COMPLETE and t["t1"].value == pytest.approx(0.6)
    assert t["t2"].state == TrialState.FAIL and t["t2"].intermediate_values == {}
    restored = cloudpickle.loads(cloudpickle.dumps(cb))
    assert restored.journal._storage is None
    moved = JournalCallback(Journal(tmp_path / "moved" / JOURNAL_FILE, "run", "val_acc", "max", PARAMS, 2))
    restored.reattach([object(), moved])  # a resumed run's own (its directory may have moved)
    assert restored.journal is moved.journal


def test_a_real_sweeps_journal_matches_its_result_json(tracked_run: dict[str, Any]) -> None:
    summary = tracked_run["summary"]
    run = summary.run
    study = load(summary.run_dir / JOURNAL_FILE, summary.run_dir.name)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    journaled = by_key(study)
    assert set(journaled) == {t.trial_id for t in run.trials} and len(study.trials) == len(run.trials)
    states = {"finished": TrialState.COMPLETE, "stopped": TrialState.PRUNED}
    for t in run.trials:
        o = journaled[t.trial_id]
        assert o.params == {k: choice(v) for k, v in t.params.items()}
        assert o.intermediate_values == {
            h["epoch"]: h[run.metric] for h in t.history if not h.get("diverged") and math.isfinite(h[run.metric])
        }
        assert o.state == states.get(t.status.value, TrialState.FAIL)
        assert o.value == (None if o.state == TrialState.FAIL else t.score(run.metric))
        assert o.user_attrs["round"] == t.round
        assert o.user_attrs["status"] == t.status.value and o.user_attrs["epochs"] == t.epochs


def test_optuna_dashboard_loads_the_journal(tracked_run: dict[str, Any]) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (pip install 'tuner[dashboard]')")
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    summary = tracked_run["summary"]
    app = wsgi(str(summary.run_dir / JOURNAL_FILE))  # as `optuna-dashboard RUN_DIR/optuna.journal` opens it

    def get(path: str) -> tuple[str, Any]:
        environ: dict[str, Any] = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        return status[0], json.loads(body)

    status, studies = get("/api/studies")
    listed = studies["study_summaries"]
    assert status.startswith("200") and [s["study_name"] for s in listed] == [summary.run_dir.name]
    status, detail = get(f"/api/studies/{listed[0]['study_id']}")
    assert status.startswith("200") and len(detail["trials"]) == len(summary.run.trials)
    assert {p["name"] for t in detail["trials"] for p in t["params"]} == {"train.lr", "train.momentum"}


@pytest.mark.parametrize("cut", [30, 1, "garbage"])
def test_a_last_line_cut_short_by_a_crash_is_dropped_when_a_resumed_run_opens_the_journal(
    tmp_path: Path, cut: Any, caplog: pytest.LogCaptureFixture
) -> None:
    j = journal(tmp_path)
    for key in "ab":
        j.started(key, CONFIG)
        j.reported(key, CONFIG, {"epoch": 1, "val_acc": 0.5})
    j.flush()
    j.reported("a", CONFIG, {"epoch": 2, "val_acc": 0.6})
    j.flush()
    path = tmp_path / JOURNAL_FILE
    whole = path.read_bytes()
    # killed mid-append: the last line without its newline, or a line of garbage (a full disk)
    path.write_bytes(whole + b'{"op_code": 7, "wor\n' if cut == "garbage" else whole[:-cut])
    again = cloudpickle.loads(cloudpickle.dumps(j))
    with caplog.at_level(logging.WARNING, logger="tuner.journal"):
        again.prepare()
        assert not again.broken
        again.reported("a", CONFIG, {"epoch": 3, "val_acc": 0.7})
        again.ended("a", CONFIG, {"epoch": 3})
        again.started("c", CONFIG)  # a new trial: Optuna hands out its id (where the old code failed)
        again.flush()
    assert not again.broken
    assert any("cut short dropped" in r.getMessage() for r in caplog.records)
    assert path.read_bytes().endswith(b"\n")
    t = by_key(load(path))  # every line of the file reads back
    assert set(t) == {"a", "b", "c"} and t["a"].state == TrialState.COMPLETE
    kept = {2: 0.6} if cut == "garbage" else {}  # else the line cut short held epoch 2
    assert t["a"].intermediate_values == pytest.approx({1: 0.5, 3: 0.7, **kept})


def test_a_whole_journal_is_left_as_it_is(tmp_path: Path) -> None:
    from tuner.journal import damaged_tail

    j = journal(tmp_path)
    j.started("a", CONFIG)
    j.flush()
    path = tmp_path / JOURNAL_FILE
    with open(path, "rb") as f:
        assert damaged_tail(f) == 0
    with open(path, "rb") as f:
        assert damaged_tail(f, window=10) == 0  # the last line starts before the window: left alone
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert damaged_tail(f) == 0
