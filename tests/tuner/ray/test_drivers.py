"""The commands running on a Ray instance (:mod:`tuner.ray.drivers`): how each is named, and
interrupting them (against an instance end to end: ``test_instance.py::test_up_run_down``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

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


def test_interrupt_sends_ctrl_c_and_returns_those_still_on_the_instance_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One driver leaves at its Ctrl-C, one ignores it: only the second is returned, once the
    timeout is spent; a driver whose process is already gone is passed over."""
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # the polite one's interpreter is up: its SIGINT is a KeyboardInterrupt
        on = [Driver(polite.pid, "polite"), Driver(stubborn.pid, "stubborn"), Driver(2**22 + 7, "gone")]

        def running(address: str, timeout: float = 10.0) -> list[Driver]:
            assert address == "127.0.0.1:1"
            return [d for d in on if d.pid == stubborn.pid or d.pid == polite.pid and polite.poll() is None]

        monkeypatch.setattr(drivers, "running", running)
        started = time.monotonic()
        left = drivers.interrupt("127.0.0.1:1", on, timeout=1.0)
        assert left == [Driver(stubborn.pid, "stubborn")]
        assert 1.0 <= time.monotonic() - started < 5
        assert polite.wait(timeout=5) != 0 and stubborn.poll() is None
    finally:
        for proc in (polite, stubborn):
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def test_an_instance_that_does_not_answer_has_no_drivers_to_name() -> None:
    """``tuner down`` stops an instance whose GCS does not answer: None, not an error."""
    from tests.cluster import free_port

    started = time.monotonic()
    assert drivers.running(f"127.0.0.1:{free_port()}") is None
    assert time.monotonic() - started < 5  # not Ray's client's 40 s of retries
