"""SIGTERM and SIGHUP during a run act as Ctrl-C; console streams whose reader went away."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tuner.signals import as_interrupt
from tuner.streams import Guarded, guard


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminate_or_hangup_signal_is_handed_to_the_ctrl_c_handler_while_a_run_goes_on(sig: int) -> None:
    before = signal.getsignal(sig)
    seen: list[int] = []
    old_int = signal.signal(signal.SIGINT, lambda s, f: seen.append(s))  # as Ray Tune's: a graceful stop
    try:
        with as_interrupt():
            os.kill(os.getpid(), sig)
        assert seen == [signal.SIGINT]
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's: KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt), as_interrupt():
            os.kill(os.getpid(), sig)
    finally:
        signal.signal(signal.SIGINT, old_int)
    assert signal.getsignal(sig) == before  # put back after the run


def test_a_stream_whose_reader_is_gone_drops_lines_instead_of_failing(tmp_path: Path) -> None:
    read, write = os.pipe()
    stream = os.fdopen(write, "w")
    g = Guarded(stream)
    g.write("first\n")
    g.flush()
    assert os.read(read, 100) == b"first\n"
    os.close(read)  # `| head` has read its lines
    for _ in range(3):
        assert g.write("more\n" * 10000) == 50000  # no BrokenPipeError
        g.flush()
    assert g.lost and not g.isatty()
    print("and later prints too", file=g)  # the descriptor now leads to /dev/null
    stream.flush()


def test_guard_wraps_the_process_streams_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    guard()
    first = sys.stdout
    guard()
    assert isinstance(sys.stdout, Guarded) and sys.stdout is first and isinstance(sys.stderr, Guarded)


def test_every_command_ends_on_sigterm_as_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From its start, not only once a run's rounds began: a SIGTERM while Ray started or data
    loaded printed Ray's own SystemExit traceback (its handler), or ended the process at once."""
    import time

    from tuner import cli
    from tuner.signals import active

    seen: list[bool] = []

    def command(args: object) -> int:
        seen.append(active())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the signal ends this at once
        return 0

    monkeypatch.setitem(cli.COMMANDS, "validate", command)
    started = time.monotonic()
    assert cli.main(["validate", "x.yaml"]) == 130
    assert time.monotonic() - started < 5 and seen == [True] and not active()
    assert capsys.readouterr().err == "tuner: interrupted\n"
