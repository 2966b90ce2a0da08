"""A trial on Ray: its device, CPUs and whereabouts; its checkpoints, and restoring a failed
trial from them on a real local Ray instance."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import DEVICES, GPUS, tiny_function_sweep, tiny_sweep
from tuner import datasets
from tuner.ray import experiment, tune_patches, worker
from tuner.ray.search import RoundSearcher
from tuner.results import load_trials
from tuner.space import Parameter
from tuner.spec import SchedulerSpec, from_dict


def test_the_trial_uses_the_gpu_ray_assigned_and_else_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert worker.trial_device() is None  # a GPU on the node, but not this trial's: the CPU
    # Ray hides every other GPU (CUDA_VISIBLE_DEVICES): "cuda" is the one it assigned, shared or whole
    monkeypatch.setattr(worker.ray, "get_gpu_ids", lambda: [2])
    assert worker.trial_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # assigned, but torch has no CUDA
    assert worker.trial_device() is None


def test_a_run_on_the_cpu_names_its_device_without_importing_torch_until_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuner.trial import TaskRun

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", None)  # any import of torch raises ImportError here
        run = TaskRun(metric="m", mode="max", device=None, cpus=2)
        run.report({"m": 1.0})
        assert run.reports[0]["device"] == "cpu"
        with pytest.raises(ImportError):
            run.device  # noqa: B018 (asking imports torch)
    assert run.device == torch.device("cpu")
    gpu = TaskRun(metric="m", mode="max", device=torch.device("cuda"))
    gpu.report({"m": 1.0})
    assert gpu.reports[0]["device"] == "cuda" and gpu.device == torch.device("cuda")


def test_the_trials_cpus_are_torchs_threads_whether_or_not_it_is_imported_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # restored afterwards
    try:
        worker.limit_threads(1)  # torch imported: set now
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(threads)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", None)  # not imported yet (and importing it would fail)
        worker.limit_threads(3)  # torch reads it when it is imported
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert torch.get_num_threads() == threads  # left alone


def test_outside_a_tune_session_a_trial_has_one_cpu() -> None:
    assert worker.trial_cpus() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_a_checkpoint_loads_on_the_cpu_and_continues_exactly_on_the_trials_device(tmp_path: Path, device: str) -> None:
    """A trial's saved state comes back with every tensor on the CPU (a CPU ``torch.Generator``
    takes only a CPU state), and a Trainer on the trial's device goes on exactly as one that
    never stopped; a GPU's checkpoint also continues on a CPU-only node."""
    from tuner.models.data import load
    from tuner.models.train import Trainer

    data = load({"name": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "seed": 0})
    model = {"name": "mlp", "hidden": [16]}
    train = {"epochs": 4, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "seed": 0}
    straight = Trainer(model, train, data, device=device)
    for _ in range(3):
        expected = straight.step()
    first = Trainer(model, train, data, device=device)
    first.step(), first.step()
    torch.save({"epoch": 2, "state": first.state_dict()}, tmp_path / worker.CHECKPOINT_FILE)
    saved = worker.load_checkpoint(tmp_path / worker.CHECKPOINT_FILE)
    assert saved is not None
    tensors = [t for t in _leaves(saved) if isinstance(t, torch.Tensor)]
    assert tensors and {t.device.type for t in tensors} == {"cpu"}
    resumed = Trainer(model, {**train, "seed": 9}, data, device=device)
    resumed.load_state_dict(saved["state"])
    got = resumed.step()
    assert got == pytest.approx(expected, rel=1e-5)
    assert next(resumed.model.parameters()).device.type == device
    on_cpu = Trainer(model, train, data, device="cpu")  # restarted on a node without the GPU
    on_cpu.load_state_dict(worker.load_checkpoint(tmp_path / worker.CHECKPOINT_FILE)["state"])  # type: ignore[index]
    assert on_cpu.step()["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-3)
    torch.save([1, 2], tmp_path / "list.pt")
    assert worker.load_checkpoint(tmp_path / "list.pt") is None  # not a dict: no state


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


EPOCHS = 6
BATCHES_PER_EPOCH = 6  # 192 training samples of the tiny synthetic set in batches of 32


def run_flaky(
    tmp_path: Path, name: str, gpu: float = 0, pause: dict[str, Any] | None = None, **trial_args: Any
) -> list[dict[str, Any]]:
    """One trial whose model raises once in epoch 4 (and sleeps as ``pause`` says:
    ``pause_at_batch``, ``pause_s``); returns its result.json rows."""
    marker = tmp_path / f"{name}.failed"
    sweep = from_dict(
        tiny_sweep(
            **{
                "model": {
                    "name": "tests.fixtures_data:flaky_net",
                    "kwargs": {"marker": str(marker), "fail_at_batch": 3 * BATCHES_PER_EPOCH + 2, **(pause or {})},
                },
                "train.epochs": EPOCHS,
                "scheduler.name": "none",
            }
        )
    )
    experiment.run_experiment(
        experiment.ExperimentSettings(
            storage=tmp_path,
            name=name,
            trial_args={
                "function": sweep.trainer,
                "base": sweep.base_config(),
                "data": datasets.load(sweep).without_test(),
                "metric": "val_acc",
                "mode": "max",
                "seed": 0,
                **trial_args,
            },
            searcher=RoundSearcher(
                [Parameter("train.lr", values=(0.05,))], "grid", [1], seed=0, metric="val_acc", mode="max"
            ),
            num_samples=1,
            metric="val_acc",
            mode="max",
            scheduler=SchedulerSpec("none", 1, 2, 1, EPOCHS),
            cpu=1,
            gpu=gpu,
            max_failures=1,
        )
    )
    assert marker.exists(), "the planned failure did not happen"
    (result,) = (tmp_path / name).glob("*/result.json")
    return [json.loads(line) for line in result.read_text().splitlines()]


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("gpu", GPUS)
def test_a_failed_trial_continues_from_its_last_checkpoint_with_the_same_batches(tmp_path: Path, gpu: int) -> None:
    every_epoch = run_flaky(tmp_path, "every-epoch", gpu=gpu, checkpoint_every_s=0)
    assert {r["device"] for r in every_epoch} == {"cuda" if gpu else "cpu"}
    # restored from the checkpoint of epoch 3: epochs 1-3 are not trained again
    assert [r["epoch"] for r in every_epoch] == [1, 2, 3, 4, 5, 6]
    assert [r["checkpoint_dir_name"] is not None for r in every_epoch] == [True] * 6
    # a trial that took no checkpoint before it failed starts again from its first epoch
    # (checkpoint_every_s=1e9: no checkpoint, not even the first epoch's)
    default = run_flaky(tmp_path, "default", gpu=gpu, checkpoint_every_s=1e9)
    assert [r["epoch"] for r in default] == [1, 2, 3, 1, 2, 3, 4, 5, 6]
    assert all(r["checkpoint_dir_name"] is None for r in default)
    # both end exactly where an uninterrupted trial ends: same weights, same batch order
    assert every_epoch[-1]["val_acc"] == default[-1]["val_acc"]
    assert every_epoch[-1]["train_loss"] == pytest.approx(default[-1]["train_loss"], rel=1e-6)
    (record,) = load_trials(tmp_path / "default", 0, EPOCHS)
    assert record.status == "finished" and [h["epoch"] for h in record.history] == list(range(1, EPOCHS + 1))


@pytest.mark.usefixtures("ray_session")
def test_a_trial_that_fails_before_the_run_directory_has_its_last_rows_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run directory's result.json lags the driver's by up to a snapshot; a trial that
    restarted within it lost the rows since (:func:`tuner.ray.tune_patches.trial_logs_kept`).
    Here the trial sleeps through snapshots at epoch 2's start, so the run directory has its
    first row, and the driver copies nothing while the trial's result.json has 3 rows: the
    restart after epoch 3's checkpoint always comes within the lag. Ray's own restore gave
    epochs [1, 2, 4, 5, 6]."""
    from tuner.ray import syncing

    real, copied = syncing.upload, []

    def lagging(source: Path, target: Path, done: Any, folders: Any = None) -> int:
        rows = [len(p.read_text().splitlines()) for p in source.glob("*/result.json")]
        if rows == [3]:
            return 0
        copied.extend(rows)
        return real(source, target, done, folders)

    monkeypatch.setattr(syncing, "upload", lagging)
    pause = {"pause_at_batch": BATCHES_PER_EPOCH + 1, "pause_s": 3 * tune_patches.SNAPSHOT_FLOOR_S}
    rows = run_flaky(tmp_path, "lagging", pause=pause, checkpoint_every_s=0)
    assert {1, 2} & set(copied), "the run directory never had an older result.json: the lag was not made"
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


@pytest.mark.usefixtures("ray_session")
def test_a_function_that_does_not_use_torch_never_imports_it_and_one_that_does_gets_the_trials_cpus(
    tmp_path: Path,
) -> None:
    """A worker imports torch only when the trial's function does (~2 s of CPU a process
    otherwise); torch, imported by the function, takes the trial's CPUs as its threads. And
    trials far shorter than a worker's start run on both slots: the second worker is not
    killed while it starts for a trial that could take the first one's
    (:func:`tuner.ray.tune_patches.starting_actors_kept`). Under the load of two test workers,
    all 8 trials once ended on the first worker before Tune had asked for the second's actor;
    such a sweep is run once more. Without the patch the second worker is killed every time
    (both sweeps run on one worker)."""
    from tuner.runner import run_sweep

    def sweep(name: str, cpu: int, import_torch: int, trials: int = 2) -> list[dict[str, Any]]:
        raw = tiny_function_sweep(
            "tests.fixtures_plain:torch_free_fit",
            name=name,
            metric="score",
            mode="max",
            config={"epochs": 2, "x": 0.0, "import_torch": import_torch},
            search={
                "method": "random",
                "num_samples": trials,
                "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
            },
            scheduler={"name": "none"},
            resources={"cpu": cpu, "gpu": 0},
        )
        del raw["data"]  # the function makes its own
        summary = run_sweep(from_dict(raw, source=f"{name}.yaml"), storage=tmp_path, write=lambda _: None)
        return [h for t in summary.run.trials for h in t.history]

    plain = sweep("plain", 1, 0, trials=8)
    if len({r["worker_pid"] for r in plain}) == 1:  # the driver too slow to ask for the second in time
        plain = sweep("plain-again", 1, 0, trials=8)
    assert len(plain) == 16 and len({r["worker_pid"] for r in plain}) == 2
    assert {(r["torch_loaded"], r["threads_seen"], r["device"]) for r in plain} == {(0, 1, "cpu")}
    with_torch = sweep("with-torch", 2, 1)
    assert len(with_torch) == 4 and {r["threads_seen"] for r in with_torch} == {2}
    assert min(r["torch_loaded"] for r in with_torch) == 0  # a later trial may reuse the worker


# -- a function that ends in a way a trial cannot: said as the trial's error ---------------------


class _Tune:
    """Ray Tune's session as :func:`worker.run_trial` sees it, without Ray: reports kept."""

    def __init__(self) -> None:
        self.reported: list[dict[str, Any]] = []

    def get_context(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(get_trial_id=lambda: "t1", get_trial_resources=lambda: None)

    def get_checkpoint(self) -> None:
        return None

    def report(self, result: dict[str, Any], checkpoint: Any = None) -> None:
        self.reported.append(result)


def _reports_then_exits(config: dict[str, Any], run: Any) -> None:
    run.report({"score": 1.0})
    sys.exit(config["code"])


def _never_reports(config: dict[str, Any], run: Any) -> None:
    pass


def _reports(config: dict[str, Any], run: Any) -> None:
    run.report({"score": 1.0})


def _call_trial(monkeypatch: pytest.MonkeyPatch, fn: Any, **base: Any) -> _Tune:
    tune = _Tune()
    monkeypatch.setattr(worker, "tune", tune)
    monkeypatch.setattr(worker, "limit_threads", lambda threads: None)  # the test process's threads stay
    monkeypatch.setattr(worker, "trial_device", lambda: None)
    monkeypatch.setattr(worker, "node_id", lambda: "node")
    monkeypatch.setattr(worker, "load_function", lambda ref: fn)
    worker.run_trial({}, function="proj:fit", base=base, data=None, metric="score", mode="max", seed=0)
    return tune


@pytest.mark.parametrize("code", [0, 3])
def test_a_function_that_calls_sys_exit_fails_its_trial_instead_of_ending_the_worker(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    with pytest.raises(worker.TrialError) as e:
        _call_trial(monkeypatch, _reports_then_exits, code=code)
    assert str(e.value) == (
        f"the trial function proj:fit called sys.exit({code}) (in _reports_then_exits, at test_worker.py:"
        f"{_reports_then_exits.__code__.co_firstlineno + 2}): return, or raise an exception to fail the trial"
    )
    assert isinstance(e.value, Exception) and isinstance(e.value.__cause__, SystemExit)


def test_a_function_that_returns_without_a_report_fails_its_trial_with_tries_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(worker.TrialError, match=r"^proj:fit returned without a single run\.report\(\.\.\.\): nothing"):
        _call_trial(monkeypatch, _never_reports)
    assert [r["score"] for r in _call_trial(monkeypatch, _reports).reported] == [1.0]  # one report is enough


def test_a_retest_seed_that_exits_or_never_reports_is_that_seeds_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "node_id", lambda: "node")  # seed_task itself sets no threads (task() does)
    common = {"seed": 7, "metric": "score", "mode": "max", "data": None, "device": None, "cpus": 1}
    monkeypatch.setattr(worker, "load_function", lambda ref: _reports_then_exits)
    out = worker.seed_task(function="proj:fit", config={"code": 3}, **common)
    assert out["seed"] == 7 and out["error"].startswith("the trial function proj:fit called sys.exit(3)")
    monkeypatch.setattr(worker, "load_function", lambda ref: _never_reports)
    out = worker.seed_task(function="proj:fit", config={}, **common)
    assert out["error"] == "proj:fit returned without a single run.report(...): nothing to optimise"


def _prints(config: dict[str, Any], run: Any) -> None:
    print("epoch 1 of the user's own")
    print("a warning of theirs", file=sys.stderr)
    run.report({"score": 1.0})


def test_what_a_trial_function_prints_is_kept_in_its_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Ray's workers do not send their output to the driver (``log_to_driver`` off): a user
    debugging with ``print`` finds it in the trial's folder, ``output.txt``; the streams are
    the process's own again after the trial."""
    from types import SimpleNamespace

    stdout, stderr = sys.stdout, sys.stderr
    context = SimpleNamespace(
        get_trial_id=lambda: "t1", get_trial_resources=lambda: None, get_trial_dir=lambda: tmp_path
    )
    monkeypatch.setattr(_Tune, "get_context", lambda self: context)
    _call_trial(monkeypatch, _prints)
    assert (tmp_path / "output.txt").read_text() == "epoch 1 of the user's own\na warning of theirs\n"
    assert sys.stdout is stdout and sys.stderr is stderr
    _call_trial(monkeypatch, _prints)  # a trial restarted in its folder: appended
    assert (tmp_path / "output.txt").read_text().count("epoch 1 of the user's own") == 2
    with worker.output_kept(None):  # no folder (outside Tune): the streams are left alone
        assert sys.stdout is stdout
    with worker.output_kept(tmp_path / "no such folder"):
        assert sys.stdout is stdout


def _interrupts(config: dict[str, Any], run: Any) -> None:
    run.report({"score": 1.0})
    raise KeyboardInterrupt


def _in_a_thread(fn: Any) -> BaseException | None:
    """``fn()`` in a thread of its own, as Ray Tune runs a trial's function; what it raised."""
    import threading

    raised: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:
            raised.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_a_keyboard_interrupt_the_function_raises_fails_its_trial_with_tries_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tune runs the function in a thread of its own, where no signal arrives: its own
    ``KeyboardInterrupt`` is its failure, in ``tuner try``'s words (Ray made it a
    ``TaskCancelledError`` naming its task, one line a trial)."""
    e = _in_a_thread(lambda: _call_trial(monkeypatch, _interrupts))
    assert isinstance(e, worker.TrialError) and isinstance(e.__cause__, KeyboardInterrupt)
    assert str(e) == (
        "the trial function proj:fit raised KeyboardInterrupt (no Ctrl-C came) (in _interrupts, at test_worker.py:"
        f"{_interrupts.__code__.co_firstlineno + 2}): raise an exception to fail the trial"
    )
    with pytest.raises(KeyboardInterrupt):  # on the main thread: Ray's cancellation of the task, passed on
        _call_trial(monkeypatch, _interrupts)


def test_a_function_that_returns_with_threads_running_says_so_in_its_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import threading
    from types import SimpleNamespace

    stop = threading.Event()

    def leaves_a_thread(config: dict[str, Any], run: Any) -> None:
        threading.Thread(target=stop.wait, name="my-poller").start()
        threading.Thread(target=stop.wait, name="a-daemon", daemon=True).start()  # ends with the process
        run.report({"score": 1.0})

    context = SimpleNamespace(
        get_trial_id=lambda: "t1", get_trial_resources=lambda: None, get_trial_dir=lambda: tmp_path
    )
    monkeypatch.setattr(_Tune, "get_context", lambda self: context)
    try:
        _call_trial(monkeypatch, leaves_a_thread)
    finally:
        stop.set()
    assert (tmp_path / "output.txt").read_text() == (
        "tuner: the trial function returned with 1 thread still running (my-poller): they keep this trial's "
        "process alive after it; join them before returning, or start them with daemon=True\n"
    )
    _call_trial(monkeypatch, _prints)  # none left: nothing said
    assert "still running" not in (tmp_path / "output.txt").read_text().split("\n", 2)[-1]


def test_a_trial_in_a_reused_worker_writes_to_the_folder_ray_copies_to_the_run_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray tells a trial that starts a worker its staging folder, but a trial in a reused worker
    (reuse_actors) a working folder that never reaches the run directory: its timed-out.txt
    was lost. The staging folder is used whichever Ray tells."""
    from types import SimpleNamespace

    from ray.train._internal import session as ray_session

    from tuner.ray import worker

    storage = SimpleNamespace(trial_driver_staging_path="/staging/run_trial_1", trial_working_directory="/w/t1")
    monkeypatch.setattr(ray_session, "get_session", lambda: SimpleNamespace(storage=storage, trial_dir="/w/t1"))
    assert worker._trial_dir() == Path("/staging/run_trial_1")
    monkeypatch.setattr(ray_session, "get_session", lambda: None)  # outside a Tune session
    assert worker._trial_dir() is None
