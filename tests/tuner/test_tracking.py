"""Tracking integrations: TensorBoard event files per trial (Ray Tune writes them) and the
optional MLflow logging of a sweep (``tuner run --mlflow-uri``)."""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tiny_function_sweep, tiny_sweep
from tuner.cli import main
from tuner.errors import InputError
from tuner.runner import run_sweep
from tuner.spec import from_dict


def read_events(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of one TensorBoard event file: tag -> [(step, value)]. The file is TFRecord:
    each record is a little-endian u64 length, a u32 CRC of it, the bytes, a u32 CRC."""
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    out: dict[str, list[tuple[int, float]]] = {}
    i = 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[i + 12 : i + 12 + n])
        i += 12 + n + 4
        for v in event.summary.value:
            out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_every_trial_has_tensorboard_events_with_our_metrics(tracked_run: dict[str, Any]) -> None:
    trials = tracked_run["summary"].run.trials
    assert len(trials) == 2
    for t in trials:
        (events,) = Path(t.path).glob("events.out.tfevents.*")
        scalars = read_events(events)
        for metric in ("val_acc", "val_loss", "train_loss"):
            got = scalars[f"ray/tune/{metric}"]
            assert [step for step, _ in got] == [1, 2]
            assert [v for _, v in got] == pytest.approx([h[metric] for h in t.history], rel=1e-5)


def test_the_tensorboard_logger_writes_our_metrics_by_epoch_and_no_open_file_into_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our logger replaces Ray's (which wrote ~20 bookkeeping scalars and flushed each result):
    the trial's metrics, step = epoch, all in the file once the trial ends; a diverged
    epoch's NaN is left out; pickled into the experiment without its open writers; no thread
    a trial."""
    import pickle

    from tuner.ray.callbacks import EpochTensorBoard

    class Trial:  # what the logger reads of Tune's Trial (hashable: it keys the open writers)
        local_path, evaluated_params = str(tmp_path), {"train.lr": 0.1}

        def init_local_path(self) -> None:
            pass

    trial = Trial()
    tb = EpochTensorBoard()
    threads = threading.active_count()
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)  # tensorboardX's writer syncs at every flush
    for epoch, loss in ((1, 0.9), (2, 0.5), (3, float("nan"))):
        tb.log_trial_result(
            epoch,
            trial,
            {
                "epoch": epoch,
                "training_iteration": epoch,
                "val_acc": 0.1 * epoch,
                "val_loss": loss,
                "train_loss": loss,
                "pid": 123,
                "time_this_iter_s": 0.1,
                "diverged": False,
                "config": {"train.lr": 0.1},
            },
        )
    # written in the driver's thread: no writer thread nor queue a trial (tensorboardX's
    # SummaryWriter starts both: ~5 ms of the driver's CPU a trial)
    assert threading.active_count() == threads
    state = pickle.loads(pickle.dumps(tb)).__dict__
    assert state["_trial_writer"] == {} and tb._trial_writer
    tb.log_trial_end(trial)
    assert threading.active_count() == threads and not tb._trial_writer
    assert synced == []  # flushed, never synced: the driver does not wait on the disk
    (events,) = tmp_path.glob("events.out.tfevents.*")
    scalars = read_events(events)
    assert {k for k in scalars if k.startswith("ray/")} == {
        "ray/tune/val_acc",
        "ray/tune/val_loss",
        "ray/tune/train_loss",
    }
    assert "_hparams_/experiment" in scalars  # the trial's params beside its last metrics (HParams tab)
    assert [s for s, _ in scalars["ray/tune/val_acc"]] == [1, 2, 3]
    assert [s for s, _ in scalars["ray/tune/val_loss"]] == [1, 2]


# -- MLflow -----------------------------------------------------------------------------------


def test_mlflow_logs_a_run_per_trial_and_the_export_under_the_sweeps_run(
    tracked_run: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip("mlflow", reason="MLflow is an extra: pip install 'tuner[mlflow]'")
    from mlflow.tracking import MlflowClient

    summary, uri = tracked_run["summary"], tracked_run["mlflow_uri"]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bn-sweeps")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # the sweep's run: named after the run directory, holding the export and the resolved sweep
    assert parent.info.run_name == "tiny" and parent.info.status == "FINISHED"
    assert parent.data.tags["tuner.run_dir"] == str(summary.run_dir)
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["best.yaml", "sweep.yaml"]
    exported = Path(client.download_artifacts(parent.info.run_id, "best.yaml", str(tmp_path)))
    assert yaml.safe_load(exported.read_text()) == yaml.safe_load((summary.run_dir / "best.yaml").read_text())
    best = summary.run.ranked()[0]
    assert parent.data.metrics["best_val_acc"] == pytest.approx(best.score("val_acc"))
    # a run per trial: its searched values as params, our metrics per epoch
    assert len(children) == len(summary.run.trials) == 2
    by_lr = {r.data.params["train.lr"]: r for r in children}
    for t in summary.run.trials:
        child = by_lr[str(t.params["train.lr"])]
        assert child.data.params == {k: str(v) for k, v in t.params.items()}
        assert child.data.tags["tuner.round"] == "0" and child.info.status == "FINISHED"
        for metric in ("val_acc", "val_loss", "train_loss"):
            history = client.get_metric_history(child.info.run_id, metric)
            assert [(m.step, m.value) for m in history] == [(h["epoch"], pytest.approx(h[metric])) for h in t.history]
        assert "time_this_iter_s" not in child.data.metrics  # Ray's bookkeeping is left out
    # where the sweep went is in the run's provenance, and so in the export's
    meta = json.loads((summary.run_dir / "run.json").read_text())
    expected = {
        "uri": uri,
        "experiment": "bn-sweeps",
        "experiment_id": experiment.experiment_id,
        "run_id": parent.info.run_id,
    }
    assert meta["provenance"]["mlflow"] == expected
    assert yaml.safe_load((summary.run_dir / "best.yaml").read_text())["provenance"]["mlflow"] == expected


@pytest.mark.usefixtures("ray_session")
def test_an_unusable_tracking_store_is_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="MLflow is an extra: pip install 'tuner[mlflow]'")
    with pytest.raises(InputError, match=r"^--mlflow-uri: 'bogus://x': MLflow has no tracking store for this") as e:
        run_sweep(
            from_dict(tiny_sweep(), source="tiny.yaml"),
            storage=tmp_path / "runs",
            write=lambda _: None,
            mlflow_uri="bogus://x",
        )
    assert len(e.value.problems) == 1 and "\n" not in e.value.problems[0]
    assert not (tmp_path / "runs").exists()


def test_mlflow_uri_without_mlflow_installed_exits_2_before_anything(
    write_sweep: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    started = []
    monkeypatch.setattr("tuner.runner.run_sweep", lambda *a, **k: started.append(1))
    storage = tmp_path / "runs"
    assert main(["run", str(write_sweep()), "--storage", str(storage), "--mlflow-uri", "sqlite:///x.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--mlflow-uri: MLflow is not installed; install it with: pip install 'tuner[mlflow]'"]
    assert not started and not storage.exists() and not (tmp_path / "x.db").exists()


def test_a_tracking_uri_mlflow_has_no_store_for_exits_2_before_the_data_or_ray(
    write_sweep: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("mlflow", reason="MLflow is an extra: pip install 'tuner[mlflow]'")
    started = []
    monkeypatch.setattr("tuner.runner.run_sweep", lambda *a, **k: started.append(1))
    storage = tmp_path / "runs"
    assert main(["run", str(write_sweep()), "--storage", str(storage), "--mlflow-uri", "nonsense://x"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("--mlflow-uri: 'nonsense://x': MLflow has no tracking store for this kind of address")
    assert not started and not storage.exists()
    # a scheme it has a store for passes this check; nothing of the store is created by it
    from tuner.tracking import check_uri

    check_uri(f"sqlite:///{tmp_path / 'x.db'}")
    check_uri(str(tmp_path / "mlruns"))
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "mlruns").exists()


def test_mlflow_experiment_needs_a_uri(write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write_sweep()), "--mlflow-experiment", "x"]) == 2
    assert capsys.readouterr().err.strip() == "--mlflow-experiment: needs --mlflow-uri"


# -- a user's own function: whatever it reports is tracked -------------------------------------


@pytest.mark.usefixtures("ray_session")
def test_tensorboard_and_mlflow_get_every_metric_a_users_function_reports(tmp_path: Path) -> None:
    """A user's function reports its own metric (``val_f1``) beside others: TensorBoard's event
    files and MLflow's trial runs hold each of them, epoch by epoch."""
    import importlib.util
    import os

    raw = tiny_function_sweep(
        "tests.fixtures_data:user_fit",
        metric="val_f1",
        config={"epochs": 2, "lr": 0.05, "width": 8},
        search={"method": "grid", "parameters": {"lr": {"values": [0.02, 0.1]}}},
        scheduler={"name": "none", "max_t": 2},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if importlib.util.find_spec("mlflow") else None
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a local MLflow store keeps its artifacts under ./mlruns
    try:
        summary = run_sweep(
            from_dict(raw, source=str(tmp_path / "fn.yaml"), base_dir=cwd),
            storage=tmp_path / "runs",
            write=lambda _: None,
            mlflow_uri=uri,
        )
    finally:
        os.chdir(cwd)
    own = ("val_f1", "val_acc", "val_loss", "train_loss")
    assert len(summary.run.trials) == 2
    for t in summary.run.trials:
        (events,) = Path(t.path).glob("events.out.tfevents.*")
        scalars = read_events(events)
        for metric in own:
            assert scalars[f"ray/tune/{metric}"] == [(h["epoch"], pytest.approx(h[metric])) for h in t.history]
    if uri is None:
        pytest.skip("MLflow is an extra: pip install 'tuner[mlflow]' (TensorBoard checked)")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = {r.data.params["lr"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(children) == 2
    for t in summary.run.trials:
        child = children[str(t.params["lr"])]
        for metric in own:
            history = client.get_metric_history(child.info.run_id, metric)
            assert [(m.step, m.value) for m in history] == [(h["epoch"], pytest.approx(h[metric])) for h in t.history]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.metrics["best_val_f1"] == pytest.approx(summary.run.ranked()[0].score("val_f1"))
