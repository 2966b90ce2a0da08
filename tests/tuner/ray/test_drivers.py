"""The commands running on a Ray instance (:mod:`tuner.ray.drivers`): how each is named, and
interrupting them (against an instance end to end: ``test_instance.py::test_up_run_down``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tuner.ray import drivers
from tuner.ray.drivers import Driver


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("/work/.venv/bin/python /work/.venv/bin/tuner run s.yaml --storage runs", "tuner run s.yaml --storage runs"),
        ("/usr/bin/python3.11 -m tuner run s.yaml", "tuner run s.yaml"),
        ("/usr/bin/python3 /work/tuner/__main__.py resume runs/x", "tuner resume runs/x"),
        ("python3 train.py --lr 0.1", "train.py --lr 0.1"),
        ("(interactive_shell) /usr/bin/python3", "python3"),
        ("/opt/conda/bin/python -m ipykernel_launcher -f k.json", "ipykernel_launcher -f k.json"),
        ("", "python"),
    ],
)
def test_a_driver_is_named_as_the_user_typed_it(command: str, shown: str) -> None:
    assert Driver(1, command).shown() == shown


CHILD = """import signal, sys, time
how = sys.argv[1]
if how == "polite":  # as in a terminal: Ctrl-C is KeyboardInterrupt (whatever this test's process ignores)
    signal.signal(signal.SIGINT, signal.default_int_handler)
elif how == "stubborn":  # catches Ctrl-C and goes on
    signal.signal(signal.SIGINT, lambda *a: None)
else:  # deaf: ignores it (a command a script started in the background); SIGTERM ends it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
print("ready", flush=True)
time.sleep(60)
"""


def test_interrupt_sends_ctrl_c_and_returns_those_still_on_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """One driver leaves at its Ctrl-C; tuner's command that ignores Ctrl-C is sent SIGTERM
    (which it takes as Ctrl-C) and leaves; another that ignores it is not waited for; one that
    catches it and goes on is returned once the timeout is spent; one already gone is passed
    over."""
    procs = {
        how: subprocess.Popen([sys.executable, "-c", CHILD, how], stdout=subprocess.PIPE, text=True)
        for how in ("polite", "stubborn", "deaf-tuner", "deaf")
    }
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        on = [
            Driver(procs["polite"].pid, "python3 polite.py"),
            Driver(procs["stubborn"].pid, "python3 stubborn.py"),
            Driver(procs["deaf-tuner"].pid, "/venv/bin/python /venv/bin/tuner run s.yaml"),
            Driver(procs["deaf"].pid, "python3 deaf.py"),
            Driver(2**22 + 7, "python3 gone.py"),
        ]

        def running(address: str, timeout: float = 10.0, clients: dict[str, Any] | None = None) -> list[Driver]:
            assert address == "127.0.0.1:1"
            return [d for d, proc in zip(on, procs.values()) if proc.poll() is None]

        monkeypatch.setattr(drivers, "running", running)
        started = time.monotonic()
        left = drivers.interrupt("127.0.0.1:1", on, timeout=2.0)
        assert left == [on[1], on[3]]
        assert 2.0 <= time.monotonic() - started < 8  # the stubborn one kept it waiting
        assert procs["polite"].wait(timeout=5) != 0 and procs["deaf-tuner"].wait(timeout=5) == -signal.SIGTERM
        assert procs["stubborn"].poll() is None and procs["deaf"].poll() is None
        procs["stubborn"].kill()
        procs["stubborn"].wait()
        started = time.monotonic()
        assert drivers.interrupt("127.0.0.1:1", [on[3]], timeout=30.0) == [on[3]]
        assert time.monotonic() - started < 5  # nothing sent: nothing waited for
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_whether_a_process_ignores_ctrl_c_is_read_from_its_status() -> None:
    deaf = subprocess.Popen([sys.executable, "-c", CHILD, "deaf"], stdout=subprocess.PIPE, text=True)
    polite = subprocess.Popen([sys.executable, "-c", CHILD, "polite"], stdout=subprocess.PIPE, text=True)
    try:
        for proc in (deaf, polite):
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert drivers._ignores_ctrl_c(deaf.pid) and not drivers._ignores_ctrl_c(polite.pid)
        assert not drivers._ignores_ctrl_c(2**22 + 7)  # no such process
    finally:
        for proc in (deaf, polite):
            proc.kill()
            proc.wait()


def test_an_instance_that_does_not_answer_has_no_drivers_to_name() -> None:
    """``tuner down`` stops an instance whose GCS does not answer: None, not an error."""
    from tests.cluster import free_port

    started = time.monotonic()
    assert drivers.running(f"127.0.0.1:{free_port()}") is None
    assert time.monotonic() - started < 5  # not Ray's client's 40 s of retries


def test_interrupt_asks_the_gcs_through_one_client_for_every_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each poll of :func:`drivers.interrupt` (5 a second, for as long as a driver takes to
    leave) reuses the GCS client the first one made."""
    from types import SimpleNamespace

    from tuner.ray import auth, instance

    proc = subprocess.Popen([sys.executable, "-c", CHILD, "stubborn"], stdout=subprocess.PIPE, text=True)
    made: list[str] = []

    def job_info(**kwargs: Any) -> dict[bytes, Any]:
        live = proc.poll() is None
        config = SimpleNamespace(ray_namespace="")
        job = SimpleNamespace(
            is_dead=not live, config=config, driver_pid=proc.pid, start_time=1, entrypoint="python3 x.py"
        )
        return {b"01": job}

    def gcs_client(address: str) -> Any:
        made.append(address)
        return SimpleNamespace(get_all_job_info=job_info)

    monkeypatch.setattr(auth, "gcs_client", gcs_client)
    monkeypatch.setattr(instance, "answers", lambda address, timeout=2.0: True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        left = drivers.interrupt("127.0.0.1:1", [Driver(proc.pid, "python3 x.py")], timeout=1.0)
        assert [d.pid for d in left] == [proc.pid] and time.monotonic() - started >= 1.0  # several polls
        assert made == ["127.0.0.1:1"]
        assert drivers.running("127.0.0.1:1") is not None and len(made) == 2  # a call on its own makes its own
    finally:
        proc.kill()
        proc.wait()
