"""The command line: exit status, one-line problems, and the commands end to end: a run that
fails (exit 1), Ctrl-C (exit 130, once or twice) and resume, ``retest --every``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, tiny_sweep
from tests.tuner.fake_run import epochs, make_run
from tests.tuner.ray.test_asha import check_decisions, rungs_file
from tuner.cli import main
from tuner.ray.search import sample
from tuner.results import load_run
from tuner.spec import load_sweep


def tuner(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_validate_ok(write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write_sweep())]) == 0
    assert (
        "ok: mlp (built-in trainer) on synthetic, random search over train.lr, train.momentum"
        in capsys.readouterr().out
    )


def test_bad_sweep_exits_2_with_one_line_a_problem_and_no_traceback(
    write_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_sweep(tiny_sweep(**{"train.epochs": 0, "train.lr": -1}))
    for command in (
        ["validate", str(path)],
        ["run", str(path), "--storage", str(tmp_path / "runs")],
        ["space", str(path), "-n", "2"],
    ):
        proc = tuner(*command, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines == [
            f"{path}: train.epochs: 0 must lie in [1, 100000]",
            f"{path}: train.lr: -1.0 must lie in (0, 1000000]",
        ]
        assert proc.stdout == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run"], "tuner run: the following arguments are required: sweep"),
        (["space", "x.yaml"], "tuner space: the following arguments are required: -n"),
        (["space", "x.yaml", "-n", "zero"], "tuner space: argument -n: 'zero' is not an integer"),
        (["space", "x.yaml", "-n", "0"], "tuner space: argument -n: 0 must be >= 1"),
        (["export", "r", "--format", "xml"], "tuner export: argument --format: invalid choice: 'xml'"),
        (["frobnicate"], "tuner: argument COMMAND: invalid choice: 'frobnicate'"),
        (["run", "x.yaml", "--bogus"], "tuner run: unrecognized arguments: --bogus (see tuner run --help)"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err


def test_missing_sweep_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nope.yaml'}: no such file"
    assert not (tmp_path / "runs").exists()


def test_space_prints_n_json_lines_without_starting_ray(write_sweep: Callable[..., Path]) -> None:
    path = write_sweep()
    code = (
        "import sys, ray; from tuner.cli import main; rc = main(sys.argv[1:]); "
        "assert not ray.is_initialized(), 'ray started'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "space", str(path), "-n", "5", "--seed", "3"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    configs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert configs == list(sample(load_sweep(path).search.parameters, "random", 5, 3))
    assert all(set(c) == {"train.lr", "train.momentum"} for c in configs)


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7)), ({"train.lr": 0.2}, epochs(0.4))])
    assert main(["export", str(run_dir), "-o", str(tmp_path / "e.json"), "--top-k", "1"]) == 0
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["score"] == 0.7 and len(data["top"]) == 1
    assert f"exported: {tmp_path / 'e.json'}" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nowhere'}: no such run directory"


def test_success_lines_escape_control_characters_in_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7))])
    odd = tmp_path / "nl\n\x1b[31mRED"
    assert main(["export", str(run_dir), "-o", str(odd / "x.yaml")]) == 0
    assert main(["report", str(run_dir), "-o", str(odd / "rep")]) == 0
    out = capsys.readouterr().out.splitlines()
    shown = f"{tmp_path}/nl\\n\\x1b[31mRED"
    assert out == [f"exported: {shown}/x.yaml", f"report: {shown}/rep/index.html"]


def test_a_read_only_run_directory_is_bad_input_for_its_default_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tuner export RUN`` (RUN/best.yaml) and ``tuner report RUN`` (RUN/report) check where
    they write before the work: exit 2, one line, nothing written. The system's answer is
    replaced (root writes anywhere)."""
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7))])
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != run_dir and real(p, mode, **kw))
    assert main(["export", str(run_dir)]) == 2
    assert main(["report", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"RUN_DIR: {run_dir / 'best.yaml'}: no permission to write in {run_dir}; export elsewhere with -o FILE",
        f"RUN_DIR: {run_dir / 'report'}: no permission to write in {run_dir}; write the report elsewhere with -o DIR",
    ]
    assert not (run_dir / "best.yaml").exists() and not (run_dir / "report").exists()
    assert main(["export", str(run_dir), "-o", str(tmp_path / "e.yaml")]) == 0  # elsewhere: fine


def test_an_unreadable_best_trial_is_said_by_export_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7)), ({"train.lr": 0.2}, epochs(0.4))])
    best = next((run_dir / "round-0").glob("run_trial_abcde_00000_*"))
    (best / "result.json").write_bytes(b"\x89garbage\n")
    assert main(["export", str(run_dir)]) == 0
    assert main(["report", str(run_dir)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    line = (
        f"warning: {run_dir}: 1 trial folder could not be read and is left out (the run's best may be among them); "
        f"the first: {best}: result.json: none of its 1 lines is JSON"
    )
    assert err == [line, line]


@pytest.mark.usefixtures("ray_session")
def test_run_in_process_with_overrides(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep()
    assert main(["run", str(path), "--storage", str(tmp_path / "runs"), "--name", "renamed", "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "renamed"
    assert f"run directory: {run_dir}" in out and f"exported best config: {run_dir / 'best.yaml'}" in out
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text())["search"]["num_samples"] == 2
    assert len(list((run_dir / "trials").glob("run_trial_*"))) == 2


def test_run_as_a_command_end_to_end(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    """`python -m tuner run` in a fresh process: its own local Ray instance, exit 0, the export."""
    path = write_sweep(tiny_sweep(**{"search.num_samples": 2, "scheduler.name": "none"}))
    proc = tuner("run", str(path), "--storage", str(tmp_path / "runs"), "--num-cpus", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "best val_acc" in proc.stdout and "Traceback" not in proc.stderr
    export = yaml.safe_load((tmp_path / "runs" / "tiny" / "best.yaml").read_text())
    assert set(export["params"]) == {"train.lr", "train.momentum"}


@pytest.mark.parametrize(("extra", "status"), [([], 0), (["--set", "train.lr=0"], 2)])
def test_the_command_exits_with_mains_status_after_the_exit_handlers_and_with_its_output_flushed(
    write_sweep: Callable[..., Path], extra: list[str], status: int
) -> None:
    """``tuner`` (tuner.__main__.entry) ends the process itself, without the interpreter's teardown: what
    was registered to run at exit still runs, buffered output still arrives, a thread still
    writing finishes, and the status is main's."""
    path = write_sweep(tiny_sweep())
    code = (
        "import atexit, sys, threading, time\n"
        "from tuner.__main__ import entry\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished'))).start()\n"
        "sys.stdout.write('buffered, no newline')\n"
        f"sys.argv = ['tuner', 'validate', {str(path)!r}, *{extra!r}]\n"
        "entry()\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == status, proc.stderr[-2000:]
    assert "exit handler ran" in proc.stdout and "thread finished" in proc.stdout
    assert "buffered, no newline" in proc.stdout and "not reached" not in proc.stdout
    assert ("ok: mlp" in proc.stdout) == (status == 0)
    assert ("train.lr: 0.0 must lie in" in proc.stderr) == (status == 2)


def test_resume_help_says_a_run_directory_holds_pickled_state(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["resume", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "holds pickled state" in out and "trusted source" in out


@pytest.mark.usefixtures("ray_session")
def test_a_run_whose_trials_all_fail_exits_1_and_is_recorded_failed(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The built-in trainer with a model function that does not build a network: every trial
    fails, so the run does (exit 1, ``run.json`` ``failed``), with the error once and where
    the logs are."""
    path = write_sweep(
        tiny_sweep(
            model={"name": "tests.fixtures_data:not_a_module"},
            max_failures=0,
            **{"search.num_samples": 2, "scheduler.name": "none", "train.epochs": 1},
        )
    )
    assert main(["run", str(path), "--storage", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == "tuner: the run failed: no trial produced a result (2 of 2 trials failed)", err
    assert any("not_a_module" in line for line in lines[1:]) and "Traceback" not in err
    assert lines[-1].strip().startswith("full logs: ") and str(tmp_path / "runs" / "tiny") in lines[-1]
    meta = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "no trial produced a result" and meta["finished"]
    assert len(meta["failures"]) == 1 and meta["failures"][0].startswith("2 trials (")
    assert not (tmp_path / "runs" / "tiny" / "best.yaml").exists()


def test_a_sweep_whose_first_trials_all_fail_alike_stops_there_and_says_why(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model that cannot be imported fails every trial the same way: after the first 3 the
    sweep stops (the other trials are not run one after another) and fails with that error,
    naming ``tuner try`` for the traceback."""
    path = write_sweep(
        tiny_sweep(
            model={"name": "tests.fixtures_data:not_a_module"},
            max_failures=0,
            **{"search.num_samples": 12, "scheduler.name": "none", "train.epochs": 1},
        )
    )
    assert main(["run", str(path), "--storage", str(tmp_path / "runs")]) == 1
    out, err = capsys.readouterr()
    assert (
        "stopped: the first 3 trials failed with the same error before any trial reported a result, so every "
        f"trial would; one trial with its traceback: tuner try {path}" in out
    ), out
    first = err.strip().splitlines()[0]
    failed, total = map(
        int,
        re.fullmatch(
            r"tuner: the run failed: no trial produced a result \((\d+) of (\d+) trials failed\)", first
        ).groups(),
    )
    assert 3 <= failed <= 4 and total < 12, first  # 2 slots: a fourth may fail alike meanwhile
    assert "not_a_module" in err and "Traceback" not in err
    meta = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "no trial produced a result"


# -- Ctrl-C on a local run ----------------------------------------------------------------------


def gated_fit(config: dict[str, Any], run: Any) -> None:
    """A trial function for the Ctrl-C tests: ``score`` = ``config["x"]`` at each of its
    ``config["epochs"]`` epochs. A trial whose ``x`` is below ``config["gate_below"]`` first
    waits (up to 120 s) for the file ``config["gate"]``: a trial held in flight, unreported,
    until the test lets it go."""
    if float(config["x"]) < float(config["gate_below"]):
        deadline = time.monotonic() + 120
        while not Path(config["gate"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    state = run.restore() or {"epoch": 0}
    for epoch in range(int(state["epoch"]) + 1, int(config["epochs"]) + 1):
        run.report({"score": float(config["x"])}, state={"epoch": epoch})


def start_gated_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``tuner run`` in a fresh process (its own local Ray) of three trials under ASHA (rungs
    at epochs 1 and 2): two quick ones (x 0.9 and 0.8) and one (x 0.1) held before its first
    report. Returns once ASHA's records at rung 1 (``asha-rungs.json``, saved with Tune's
    experiment state) hold both quick ones, with the process, the run directory and the gate."""
    gate = tmp_path / "gate"
    sweep = {
        "name": "gated",
        "metric": "score",
        "mode": "max",
        "function": "tests.tuner.test_cli:gated_fit",
        "config": {"x": 0.5, "epochs": 2, "gate": str(gate), "gate_below": 0.5},
        "search": {"method": "grid", "num_samples": 1, "parameters": {"x": {"values": [0.9, 0.8, 0.1]}}},
        "scheduler": {"name": "asha", "max_t": 2, "grace_period": 1, "reduction_factor": 2},
        "resources": {"cpu": 1, "gpu": 0},
        "max_failures": 0,
    }
    path = tmp_path / "gated.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    run_dir = tmp_path / "runs" / "gated"
    with open(tmp_path / "run.out", "wb") as out, open(tmp_path / "run.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuner", "run", str(path), "--storage", str(tmp_path / "runs"), "--num-cpus", "2"],
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def recorded_at_rung_1() -> int:
        try:
            rungs = json.loads(rungs_file(run_dir).read_text())["brackets"][0]
        except (ValueError, OSError):  # not there yet (or being replaced)
            return 0
        return len({r["milestone"]: r["recorded"] for r in rungs}.get(1.0, {}))

    deadline = time.monotonic() + 180
    while recorded_at_rung_1() < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if recorded_at_rung_1() < 2 or proc.poll() is not None:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the quick trials did not reach rung 1:\n{output(tmp_path)}")
    return proc, run_dir, gate


def output(tmp_path: Path) -> str:
    return (tmp_path / "run.out").read_text(errors="replace") + (tmp_path / "run.err").read_text(errors="replace")


def wait(proc: subprocess.Popen[bytes], tmp_path: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"tuner did not end {timeout}s after Ctrl-C:\n{output(tmp_path)}") from None


def signalled(proc: subprocess.Popen[bytes], tmp_path: Path, sig: int, before: Callable[[], None] | None = None) -> int:
    """``before()`` while ``proc`` runs, then ``sig`` to it; its exit status (killed if it does not end)."""
    try:
        if before is not None:
            before()
        proc.send_signal(sig)
        return wait(proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def refused_while_running(run_dir: Path, proc: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{run_dir}: the run is in progress (its driver, pid {proc.pid} on " in err[0]


def trials_by_x(run_dir: Path) -> dict[float, Any]:
    return {t.params["x"]: t for t in load_run(run_dir).trials}


@pytest.mark.usefixtures("ray_session")
def test_ctrl_c_exits_130_and_resume_finishes_the_run_with_ashas_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while a trial is in flight: exit 130, ``run.json`` ``interrupted``, a hint to
    resume. ``tuner resume`` (here in this process) then finishes the run with ASHA's rung
    records restored: the held trial (x 0.1), judged at rung 1 only after the resume, is
    stopped against the records of the two that finished before the interrupt (a resumed
    ASHA without them would judge it against nothing and let it go on), and the rung records
    are rewritten with the old ones kept, in their order."""
    proc, run_dir, gate = start_gated_run(tmp_path)
    code = signalled(proc, tmp_path, signal.SIGINT)
    text = output(tmp_path)
    assert code == 130, text
    assert f"tuner resume {run_dir}" in text and "tuner: interrupted" in text
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    before = json.loads(rungs_file(run_dir).read_text())["brackets"][0]
    rung1 = {r["milestone"]: r["recorded"] for r in before}[1.0]
    assert sorted(rung1.values()) == [0.8, 0.9]  # the held trial has not reached the rung

    gate.touch()
    assert main(["resume", str(run_dir), "--quiet"]) == 0, capsys.readouterr().err
    run = load_run(run_dir)
    assert run.meta.status.value == "done" and len(run.meta.resumed) == 1
    by_x = trials_by_x(run_dir)
    assert (by_x[0.1].status.value, by_x[0.1].epochs) == ("stopped", 1)
    assert by_x[0.9].status.value == "finished" and by_x[0.9].epochs == 2
    after = json.loads(rungs_file(run_dir).read_text())["brackets"][0]
    for old, new in zip(before, after):
        assert list(new["recorded"].items())[: len(old["recorded"])] == list(old["recorded"].items())
    assert check_decisions(rungs_file(run_dir), run.trials, "score", "max", 2) >= 1


def test_sigterm_ends_a_run_as_ctrl_c_does_and_a_resume_meanwhile_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a driver runs a sweep, ``tuner resume`` of its run is refused (exit 2, one line:
    two drivers would train every trial twice); SIGTERM (a time limit, a service manager, a
    preempted machine) then ends the run as Ctrl-C does: exit 130, ``interrupted``, the hint
    to resume, no traceback, and the lock goes with the driver."""
    from tuner.lock import driver_state

    proc, run_dir, _gate = start_gated_run(tmp_path)
    code = signalled(proc, tmp_path, signal.SIGTERM, before=lambda: refused_while_running(run_dir, proc, capsys))
    text = output(tmp_path)
    assert code == 130, text
    assert f"tuner resume {run_dir}" in text and "Traceback" not in text and "SIGTERM received" not in text
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert driver_state(run_dir) == "gone"


@pytest.mark.usefixtures("ray_session")
def test_a_second_ctrl_c_still_exits_130_and_leaves_a_resumable_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second Ctrl-C skips Ray Tune's saving on the way out; the run still ends at once with
    exit 130, marked ``interrupted``, and resumes from the last periodic snapshot."""
    proc, run_dir, gate = start_gated_run(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert proc.poll() is None, "tuner ended before the second Ctrl-C"
        proc.send_signal(signal.SIGINT)
        code = wait(proc, tmp_path, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output(tmp_path)
    assert code == 130, text
    assert "Traceback" not in text and "internal error" not in text
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"

    gate.touch()
    assert main(["resume", str(run_dir), "--quiet"]) == 0, capsys.readouterr().err
    run = load_run(run_dir)
    assert run.meta.status.value == "done" and len(run.trials) == 3
    by_x = trials_by_x(run_dir)
    assert by_x[0.9].status.value == "finished" and by_x[0.1].status.value == "stopped"


# -- retest --every -------------------------------------------------------------------------------


def fake_retests(monkeypatch: pytest.MonkeyPatch, drifts: list[bool]) -> tuple[list[dict[str, Any]], list[float]]:
    """``tuner.retesting.retest`` and ``time.sleep`` (in this thread) replaced: each retest
    returns the next of ``drifts``, and the second sleep is a Ctrl-C. Returns the retests'
    arguments and the sleeps' seconds, as they come."""
    calls: list[dict[str, Any]] = []
    sleeps: list[float] = []
    real_sleep = time.sleep

    def retest(export: str, **kwargs: Any) -> Any:
        calls.append({"export": export, **kwargs})
        return SimpleNamespace(drift=drifts[len(calls) - 1])

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread():  # Ray's threads, say
            real_sleep(seconds)
            return
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("tuner.retesting.retest", retest)
    monkeypatch.setattr(time, "sleep", sleep)
    return calls, sleeps


def test_retest_every_repeats_until_ctrl_c_then_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, sleeps = fake_retests(monkeypatch, [False, False, False])
    args = ["retest", "best.yaml", "--every", "15m", "--seeds", "4", "--tolerance", "0.1", "--data", "seed=7"]
    assert main(args) == 0
    assert sleeps == [900.0, 900.0] and len(calls) == 2  # retest, sleep, retest, Ctrl-C in the sleep
    assert all(
        c["export"] == "best.yaml" and c["seeds"] == 4 and c["tolerance"] == 0.1 and c["data"] == {"seed": 7}
        for c in calls
    )
    out = capsys.readouterr().out
    assert out.count("next retest in 15m") == 2 and out.rstrip().endswith("stopped")


def test_retest_every_with_fail_on_drift_stops_at_the_first_drift(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, sleeps = fake_retests(monkeypatch, [False, True, False])
    assert main(["retest", "best.yaml", "--every", "30s", "--fail-on-drift"]) == 3
    assert len(calls) == 2 and sleeps == [30.0]
    assert capsys.readouterr().out.count("next retest in 30s") == 1


def test_retest_every_stops_once_its_reader_is_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tuner retest EXPORT --every 1h | head -1`: nobody reads the retests any more."""
    from tests.tuner.test_streams import gone_reader

    calls, sleeps = fake_retests(monkeypatch, [False, False, False])
    gone = gone_reader()
    monkeypatch.setattr(sys, "stdout", gone)
    assert main(["retest", "best.yaml", "--every", "1h"]) == 0
    assert len(calls) == 1 and sleeps == []
    assert capsys.readouterr().err == ""


def test_ctrl_c_during_a_retest_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def retest(export: str, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("tuner.retesting.retest", retest)
    assert main(["retest", "best.yaml", "--every", "1h"]) == 130
    assert capsys.readouterr().err.strip() == "tuner: interrupted"


def test_export_onto_a_file_of_the_run_it_reads_is_refused_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check moved into the library (tuner.export_file.export_run); the command's line and
    exit status are what they were."""
    run_dir = make_run(tmp_path / "r", [({"train.lr": 0.1}, epochs(0.5))])
    before = (run_dir / "run.json").read_bytes()
    assert main(["export", str(run_dir), "-o", str(run_dir / "run.json")]) == 2
    assert capsys.readouterr().err == (
        f"-o: {run_dir / 'run.json'}: would overwrite a file of {run_dir}, which this command reads; write elsewhere\n"
    )
    assert (run_dir / "run.json").read_bytes() == before and not (run_dir / "best.yaml").exists()


def test_set_narrows_one_search_parameter(write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--set search.parameters.train.lr.max=...`` split ``train.lr`` at its dot: three
    misleading lines, and no way to change one parameter's range from the command line."""
    path = write_sweep()
    assert main(["validate", str(path), "--set", "search.parameters.train.lr.max=0.02"]) == 0
    capsys.readouterr()
    assert main(["validate", str(path), "--set", "search.parameters.train.lr.max=1e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.parameters.train.lr.min: 0.001 must be < max (0.0001)" in err[0], err
    assert main(["validate", str(path), "--set", "search.parameters.train.nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "addresses no parameter of search.parameters" in err[0], err


def test_space_prints_strict_json(write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(**{"search.parameters": {"train.batch_size": {"values": [16, 32]}}})
    assert main(["space", str(path), "-n", "3"]) == 0
    for line in capsys.readouterr().out.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


# -- a subcommand's usage errors; --json when the run is not done; nothing searched -------------


def test_an_unknown_argument_of_a_command_is_told_against_that_command(
    write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep()
    assert main(["validate", str(path), "--bogus"]) == 2
    assert capsys.readouterr().err == "tuner validate: unrecognized arguments: --bogus (see tuner validate --help)\n"
    assert main(["space", str(path), "-n", "2", "x", "y"]) == 2
    assert capsys.readouterr().err == "tuner space: unrecognized arguments: x y (see tuner space --help)\n"
    assert main(["--bogus", "validate", str(path)]) == 2  # the top level's own
    assert capsys.readouterr().err == "tuner: unrecognized arguments: --bogus (see tuner --help)\n"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "SWEEP", "--set", "train.lr=0", "--json"],
        ["run", "SWEEP", "--json", "--num-samples", "0"],  # a usage error
        ["resume", "MISSING", "--json"],
    ],
)
def test_json_on_bad_input_is_a_json_object_on_stdout(
    args: list[str], write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, missing = str(write_sweep()), str(tmp_path / "missing")
    args = [path if a == "SWEEP" else missing if a == "MISSING" else a for a in args]
    assert main(args) == 2
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result == {
        "status": "bad_input",
        "run_dir": missing if args[0] == "resume" else None,
        "problems": err.splitlines(),
    }
    assert len(result["problems"]) == 1 and out.count("\n") == 1


def test_json_on_a_failed_run_is_a_json_object_on_stdout(
    write_sweep: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuner.errors import RunError

    def run_sweep(*args: Any, **kwargs: Any) -> Any:
        e = RunError("the run failed: no trial produced a result (2 of 2 trials failed)", ["2 trials: boom", "logs"])
        e.tuner_run_dir = "runs/tiny"  # type: ignore[attr-defined]
        raise e

    monkeypatch.setattr("tuner.runner.run_sweep", run_sweep)
    assert main(["run", str(write_sweep()), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "status": "failed",
        "run_dir": "runs/tiny",
        "error": "the run failed: no trial produced a result (2 of 2 trials failed)",
        "errors": ["2 trials: boom", "logs"],
    }
    assert err.splitlines()[0] == "tuner: the run failed: no trial produced a result (2 of 2 trials failed)"
    assert main(["run", str(write_sweep()), "--quiet"]) == 1 and capsys.readouterr().out == ""  # only with --json


@pytest.mark.parametrize("raised", [KeyboardInterrupt(), ZeroDivisionError("x")])
def test_json_on_an_interrupted_run_or_a_bug_is_a_json_object_on_stdout(
    raised: BaseException,
    write_sweep: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    def run_sweep(*args: Any, **kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr("tuner.runner.run_sweep", run_sweep)
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    code = main(["run", str(write_sweep()), "--json"])
    result = json.loads(capsys.readouterr().out)
    if isinstance(raised, KeyboardInterrupt):
        assert code == 130 and result == {"status": "interrupted", "run_dir": None}
    else:
        assert code == 1 and result["status"] == "failed" and result["errors"] == []
        assert result["error"].startswith("internal error: ZeroDivisionError: x (a bug in tuner; the traceback is in ")


def test_a_grid_or_an_export_with_nothing_searched_is_one_configuration(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`validate` said 1 trial, and `space -n 1000` printed 1000 `{}`."""
    grid = write_sweep(**{"search.method": "grid", "search.num_samples": 1, "search.parameters": {}})
    assert main(["validate", str(grid)]) == 0 and ", 1 trials," in capsys.readouterr().out
    assert main(["space", str(grid), "-n", "1000"]) == 0
    assert capsys.readouterr().out == "{}\n"
    run_dir = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    assert main(["export", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["space", str(run_dir / "best.yaml"), "-n", "3"]) == 0
    assert capsys.readouterr().out == "{}\n"
    random = write_sweep(**{"search.parameters": {}}, name="random.yaml")  # nothing searched: one
    assert main(["space", str(random), "-n", "3"]) == 0
    assert capsys.readouterr().out == "{}\n"


def test_a_training_split_of_one_sample_is_refused_before_training(
    write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """With one training sample, `tuner try` trained no batch (batch norm drops a batch of one)
    and reported `train_loss 0`."""
    path = write_sweep(**{"data.n_samples": 20, "data.val_fraction": 0.93})
    assert main(["try", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: data: the training split holds 1 sample (15 went to validation): the built-in trainer needs "
        "at least 2 (batch norm cannot normalise a batch of one); lower val_fraction or add samples\n"
    )
