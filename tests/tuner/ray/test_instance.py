"""A local Ray instance kept up between commands (``tuner up`` / ``tuner down``): its record is
data (a record that is not one, or of an instance that is gone, is never joined), commands
without ``--address`` join it, and ``tuner down`` leaves no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cluster import free_port
from tests.conftest import ROOT, tiny_sweep
from tuner.ray import cluster, head, instance, joining, prestart, reaping


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path))
    return tmp_path


def record(**changes: object) -> dict[str, object]:
    fields = {
        "address": f"127.0.0.1:{free_port()}",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "python": sys.prefix,
        "ray": instance._ray_version(),
        "started": time.time(),
        "log": "/dev/null",
    }
    fields.update(changes)
    return fields


def write(cache: Path, text: str | dict[str, object]) -> Path:
    path = cache / instance.RECORD
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return path


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        "null",
        json.dumps(record(address="10.0.0.1:6379")),  # never a remote address: only what tuner up started
        json.dumps(record(address="127.0.0.1:6379; rm -rf /")),
        json.dumps(record(pid=1)),
        json.dumps(record(pid="12; kill")),
        json.dumps(record(pid=float("inf"))),  # "pid": Infinity, which Python's json reads (found by the fuzz test)
        json.dumps({k: v for k, v in record().items() if k != "pid"}),
    ],
)
def test_a_file_that_is_not_a_record_is_ignored(cache: Path, text: str) -> None:
    write(cache, text)
    assert instance._read(cache / instance.RECORD) is None
    assert instance.running() is None
    assert joining.resolve(None) is None  # the command starts its own instance


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), st.dictionaries(st.sampled_from(list(record())), st.from_type(object))))
def test_reading_any_record_never_raises(cache: Path, data: bytes | dict[str, object]) -> None:
    path = cache / instance.RECORD
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        try:
            path.write_text(json.dumps({**record(), **data}, default=repr))
        except (ValueError, RecursionError):
            return
    inst = instance._read(path)
    assert inst is None or instance._ADDRESS.fullmatch(inst.address)


def test_a_record_of_an_instance_that_is_gone_is_forgotten(cache: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a process number nobody holds now
    path = write(cache, record(pid=proc.pid))
    assert instance.running() is None
    assert not path.exists()
    path = write(cache, record())  # a live process that is not ray start (this one)
    assert instance.running() is None
    assert not path.exists()


def test_a_record_of_another_machine_or_ray_is_not_joined(cache: Path) -> None:
    path = write(cache, record(host="another-machine"))
    assert instance.running() is None and path.exists()  # it may be up there: left alone
    assert instance.stop() is None and path.exists()
    write(cache, record(ray="0.0.1"))
    assert instance.running() is None
    write(cache, record(python="/another/venv"))
    assert instance.running() is None


def test_up_refuses_to_start_beside_an_instance_of_another_environment(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuner.errors import InputError

    path = write(cache, record(ray="0.0.1", address="127.0.0.1:6390"))
    monkeypatch.setattr(instance, "_alive", lambda pid: True)
    with pytest.raises(InputError) as e:
        instance.start()
    assert str(e.value) == (
        f"a Ray instance of another environment ({sys.prefix}, Ray 0.0.1) is up at 127.0.0.1:6390: stop it with "
        "tuner down first"
    )
    assert path.exists()
    path = write(cache, record(address=f"127.0.0.1:{free_port()}"))  # alive, but nothing listens there
    assert instance.running() is None and path.exists()  # not joined, kept for tuner down
    assert capsys.readouterr().err == (
        f"warning: the Ray instance tuner up started does not answer at {instance._read(path).address}: this "
        "command starts one of its own (tuner down stops that one)\n"
    )
    with pytest.raises(InputError, match="^the Ray instance tuner up started does not answer at 127.0.0.1:"):
        instance.start()


def test_commands_without_an_address_join_the_instance_kept_up(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = instance.Instance(**record())  # type: ignore[arg-type]
    monkeypatch.setattr(instance, "running", lambda: kept)
    assert joining.resolve(None) == kept.address
    assert joining.resolve("auto") == "auto"  # an address of the user's own wins
    assert joining.resolve(None, num_cpus=1) is None  # a size of its own: an instance of its own


def test_down_with_nothing_up(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    assert main(["down"]) == 0
    assert capsys.readouterr().out.strip() == "no Ray instance of tuner up is running"


def test_up_fails_in_one_line_when_ray_cannot_start(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.errors import RunError

    monkeypatch.setenv("RAY_TMPDIR", "/proc/not-a-folder")
    with pytest.raises(RunError) as e:
        instance.start(num_cpus=1, timeout=60)
    assert str(e.value).startswith("Ray did not start (exit status ")
    assert e.value.details[-1] == f"its output: {cache / 'ray-instance.log'}"
    assert not (cache / instance.RECORD).exists()


def test_ctrl_c_while_up_starts_leaves_nothing_running(
    cache: Path, ray_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmpdir))

    def ours() -> list[int]:  # the processes of this instance: they inherit its RAY_TMPDIR
        mark = f"RAY_TMPDIR={ray_tmpdir}".encode()
        pids = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                state = (environ.parent / "stat").read_text().rpartition(")")[2].split()[0]
                if state != "Z" and mark in environ.read_bytes().split(b"\0"):
                    pids.append(int(environ.parent.name))
            except (OSError, ValueError):
                continue
        return [p for p in pids if p != os.getpid()]

    def interrupt(seconds: float) -> None:
        assert ours(), "ray start is running"
        raise KeyboardInterrupt  # Ctrl-C while Ray starts

    monkeypatch.setattr(instance, "_wait", interrupt)
    with pytest.raises(KeyboardInterrupt):
        instance.start(num_cpus=1)
    assert not ours()
    assert not (cache / instance.RECORD).exists()


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """Ray's temp dir for the instance (short: Ray's socket paths are limited to 107 bytes),
    so that it never touches /tmp/ray, where other sessions' ``--address auto`` look."""
    root = Path(tempfile.mkdtemp(prefix="tu-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_up_run_down(
    cache: Path, ray_tmpdir: Path, tmp_path: Path, write_sweep: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmpdir))
    home = tmp_path / "home"  # a user who never ran Ray: no ~/.ray/auth_token (ray start makes none)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)

    def tuner(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tuner", *args], capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path
        )

    # `tuner up` through the venv's `tuner` script (its sys.executable is .venv/bin/python3),
    # the commands after it through `python -m tuner`: one environment, so they join it
    script = Path(sys.executable).with_name("tuner")
    up = subprocess.run(
        [str(script), "up", "--num-cpus", "2", "--num-gpus", "0"], capture_output=True, text=True, env=env, timeout=240
    )
    try:
        assert up.returncode == 0, up.stderr
        assert (home / ".ray" / "auth_token").is_file()  # made, as ray.init makes one
        inst = instance.running()
        assert inst is not None
        assert up.stdout.startswith(f"Ray instance up at {inst.address} (2 CPUs / 0 GPUs): ")
        warm = _warm_workers(inst.pid, 2)  # one a CPU, started and idle for the first run
        assert all(_imported_torch(pid) for pid in warm)  # its workers import what a trial needs
        again = tuner("up")
        assert again.returncode == 0
        assert again.stdout.startswith(f"a Ray instance is already up at {inst.address} (2 CPUs / 0 GPUs), since ")
        assert instance.running() == inst
        other = tuner("up", "--num-cpus", "3")  # another size: said, not silently ignored
        assert other.returncode == 2 and other.stderr.strip() == (
            f"--num-cpus 3: the Ray instance already up at {inst.address} has 2 CPUs; "
            "tuner down first to start one of another size"
        ), other.stderr
        assert tuner("up", "--num-cpus", "2").returncode == 0 and instance.running() == inst

        sweep = write_sweep(tiny_sweep(**{"search.num_samples": 2, "train.epochs": 2}))
        run = tuner("run", str(sweep), "--storage", str(tmp_path / "runs"), "--json")
        assert run.returncode == 0, run.stderr
        assert f"connecting to Ray at {inst.address} (the instance tuner up keeps)" in run.stderr
        meta = json.loads((Path(json.loads(run.stdout)["run_dir"]) / "run.json").read_text())
        assert meta["cluster"]["address"] == inst.address
        assert instance.running() == inst  # the command left it up
        # it left without Ray's shutdown (cluster.disconnect(process_ends=True)): the instance
        # ended its job all the same when the process ended
        deadline = time.monotonic() + 20
        while not all(ended := _jobs_ended(inst.address, env)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ended == [True], ended
        deadline = time.monotonic() + 20
        while any(map(_process, warm)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_process, warm))  # the run's trials took them (and ended with them)
        warm = _warm_workers(inst.pid, 2)  # and the run left as many for the next: not more
        time.sleep(1)
        assert len(prestart.idle_pids(inst.pid)) == 2

        # a command still on it: `tuner down` names it and leaves the instance up (the command
        # would die with it after Ray's 30 s drain); --force interrupts it as Ctrl-C would first
        assert _drivers(inst.address, env) == []  # the run's driver is not counted once it ended
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        joined = subprocess.Popen(
            [sys.executable, str(script), inst.address],
            env={**env, "RAY_AUTH_MODE": "token"},  # a script of the user's own: Ray's own setting
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert joined.stdout is not None and joined.stderr is not None
        assert joined.stdout.readline().strip() == "joined", joined.stderr.read()
        assert _drivers(inst.address, env) == [[joined.pid, f"driver.py {inst.address}"]]
        named = f"'driver.py {inst.address}' (pid {joined.pid})"
        refused = tuner("down")
        assert refused.returncode == 2 and refused.stderr.strip() == (
            f"the Ray instance at {inst.address} is in use by {named}: let it end, or tuner down --force to "
            "interrupt it as Ctrl-C would (a run is saved and resumes with tuner resume)"
        ), refused.stderr
        assert instance.running() == inst and joined.poll() is None
        started = time.monotonic()
        down = tuner("down", "--force")
        assert time.monotonic() - started < 25  # not Ray's drain of 30 s
        assert joined.wait(timeout=10) != 0 and "KeyboardInterrupt" in joined.stderr.read()
    finally:
        if instance.running() is not None:
            tuner("down", "--force")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == [
        f"interrupted {named} as Ctrl-C would: a run resumes with tuner resume",
        f"stopped the Ray instance at {inst.address}",
    ]
    assert not (cache / instance.RECORD).exists()
    assert not live_members(inst.pid)  # nothing of its process group is left
    left = subprocess.run(["pgrep", "-f", str(ray_tmpdir)], capture_output=True, text=True).stdout.split()
    assert not left, left
    deadline = time.monotonic() + 10
    while any(map(_process, warm)) and time.monotonic() < deadline:  # the workers kept warm end with it
        time.sleep(0.2)
    assert not any(map(_process, warm))


def test_the_command_leaves_tuner_ups_instance_without_rays_shutdown_and_only_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``process_ends`` (the ``tuner`` command, whose process ends next) skips Ray's shutdown and
    its exit hook on tuner up's instance, and still leaves workers warm; on an instance of the
    command's own it leaves the instance for :func:`cluster.end_left`; on a cluster joined, or
    without it, Ray's shutdown runs."""
    import atexit

    import ray
    from ray._private import worker

    calls: list[Any] = []
    kept = instance.Instance(
        address="127.0.0.1:1", pid=1, host=socket.gethostname(), python=sys.prefix, ray="2.60", started=0.0, log=""
    )
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "shutdown", lambda *a, **k: calls.append("shutdown"))
    monkeypatch.setattr(atexit, "unregister", lambda f: calls.append(("unregister", f)))
    monkeypatch.setattr(prestart, "keep_warm", lambda address, pid, count: calls.append(("warm", address, count)))
    monkeypatch.setattr(prestart, "slots_wanted", 2)
    monkeypatch.setattr(cluster, "_instance_processes", lambda: [])
    monkeypatch.setattr(cluster, "_on_local_instance", True)

    @contextlib.contextmanager
    def ended_quickly() -> Iterator[None]:
        calls.append("raylet ended quickly")
        yield

    monkeypatch.setattr(head, "ended_quickly", ended_quickly)
    monkeypatch.setattr(cluster, "_kept", kept)
    cluster.disconnect(process_ends=True)
    assert calls == [("unregister", worker.shutdown), ("warm", "127.0.0.1:1", 2)]
    assert cluster._kept is None and cluster.on_local_instance() is False

    calls.clear()
    monkeypatch.setattr(cluster, "_kept", kept)
    monkeypatch.setattr(cluster, "_on_local_instance", True)
    cluster.disconnect()  # a long-lived driver (a notebook, the test session) leaves as Ray does
    assert calls == ["shutdown", ("warm", "127.0.0.1:1", 2)]

    # an instance of the command's own: left running for the exit functions, ended after them
    calls.clear()
    monkeypatch.setattr(cluster, "_kept", None)
    monkeypatch.setattr(cluster, "_on_local_instance", True)
    monkeypatch.setattr(cluster, "_left", [])
    monkeypatch.setattr(cluster, "_instance_processes", lambda itself=False: [(7, "1"), (8, "2")] if itself else [])
    monkeypatch.setattr(reaping, "supported", lambda: True)
    cluster.disconnect(process_ends=True)
    assert calls == [("unregister", worker.shutdown)] and cluster._left == [(7, "1"), (8, "2")]
    monkeypatch.setattr(reaping, "reap", lambda noted: [pid for pid, _ in noted])
    assert cluster.end_left() == [7, 8] and cluster._left == []
    assert cluster.end_left() == []  # once

    calls.clear()  # where processes cannot be reaped (no /proc), Ray's shutdown as before
    monkeypatch.setattr(cluster, "_on_local_instance", True)
    monkeypatch.setattr(reaping, "supported", lambda: False)
    cluster.disconnect(process_ends=True)
    assert calls == ["raylet ended quickly", "shutdown"] and cluster._left == []
    monkeypatch.setattr(reaping, "supported", lambda: True)

    calls.clear()
    monkeypatch.setattr(cluster, "_on_local_instance", True)
    cluster.disconnect()  # a long-lived driver (a notebook): Ray's shutdown, its raylet not waited on
    assert calls == ["raylet ended quickly", "shutdown"] and cluster._left == []

    calls.clear()
    monkeypatch.setattr(cluster, "_on_local_instance", False)
    cluster.disconnect(process_ends=True)  # a cluster joined: Ray's shutdown touches none of its processes
    assert calls == ["shutdown"]


DRIVER = """import signal, sys, time
import ray
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever this test's process ignores
ray.init(address=sys.argv[1], log_to_driver=False)
print("joined", flush=True)
time.sleep(120)
"""


def _drivers(address: str, env: dict[str, str]) -> list[list[Any]]:
    """The live drivers of the instance at ``address`` (:func:`tuner.ray.drivers.running`) as
    pid and command, asked from a process of ``env`` (the instance's token)."""
    code = (
        "import json, sys\nfrom tuner.ray import drivers\n"
        "print(json.dumps([[d.pid, d.shown()] for d in drivers.running(sys.argv[1])]))"
    )
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _jobs_ended(address: str, env: dict[str, str]) -> list[bool]:
    """Whether each job (driver) the instance at ``address`` has had is ended, as its GCS records
    it; asked from a process of ``env`` (the instance's token)."""
    code = (
        "import json, sys\nfrom tuner.ray import auth\n"
        "infos = auth.gcs_client(sys.argv[1]).get_all_job_info(skip_submission_job_info_field=True, "
        "skip_is_running_tasks_field=True, timeout=10)\n"
        "print(json.dumps([bool(job.is_dead) for job in infos.values()]))"
    )
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def _warm_workers(group: int, count: int) -> list[int]:
    """The idle workers of tuner up's instance, once there are ``count`` of them."""
    deadline = time.monotonic() + 60
    while len(pids := prestart.idle_pids(group)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(pids) == count, pids
    return pids


def _imported_torch(pid: int) -> bool:
    """Whether process ``pid`` has loaded torch's library (it imports as it starts); waits for it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                return True
        time.sleep(0.2)
    return False


def _process(pid: int) -> bool:
    """Whether ``pid`` is still running (and not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_the_record_holds_what_running_checks() -> None:
    assert set(asdict(instance.Instance(**record()))) == set(record())  # type: ignore[arg-type]


def live_members(pgid: int) -> list[str]:
    """The processes of a process group that still run (zombies, which only wait for their
    parent to reap them, do not count)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(stat.read_text()[:80])
    return live


def test_a_killed_instance_is_forgotten_and_what_it_left_is_stopped(
    cache: Path, ray_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from tests.cluster import wait_for

    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmpdir))
    inst, new = instance.start(num_cpus=1, num_gpus=0)
    try:
        assert new and instance.running() == inst
        os.kill(inst.pid, signal.SIGKILL)  # `kill -9` of its ray start: the raylet's agents outlive it
        wait_for(lambda: not instance._alive(inst.pid), 30, "the killed ray start to go")
        assert instance.running() is None  # the next command starts its own
        assert not (cache / instance.RECORD).exists()

        wait_for(lambda: not live_members(inst.pid), 30, "every process of the killed instance to go")
    finally:
        instance._stop_group(inst.pid)


def test_two_ups_at_the_same_moment_start_one_instance(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check for an instance and the start of one are one step: a second ``tuner up``
    started meanwhile waits for the first, then finds its instance instead of starting an
    untracked second one."""
    import threading

    started: list[str] = []
    inside = threading.Event()

    def fake_start(path: Path, *args: object) -> tuple[object, bool]:
        if started:  # the second finds the first's instance
            return started[0], False
        inside.set()
        time.sleep(0.5)  # a second `up` arrives now
        started.append("the instance")
        return started[0], True

    monkeypatch.setattr(instance, "_start", fake_start)
    results: list[tuple[object, bool]] = []
    first = threading.Thread(target=lambda: results.append(instance.start()))
    first.start()
    assert inside.wait(10)
    results.append(instance.start())
    first.join()
    assert sorted(r[1] for r in results) == [False, True] and started == ["the instance"]
