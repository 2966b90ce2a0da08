"""A command's own output: a reader that went away ends a streaming command at once (exit 0);
an output that cannot be written (a full disk, a closed stdout) is one line and exit 1, never
a success nor a bug of tuner's."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tuner import streams
from tuner.cli import main
from tuner.streams import Guarded

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FULL = "tuner: cannot write the output: No space left on device"
CLOSED = "tuner: cannot write the output: Bad file descriptor"


def command(*args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m tuner ARGS`` (the console entry point's path), its stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=120,
        **kwargs,
    )


def gone_reader() -> Guarded:
    """A guarded stream whose pipe's reader went away (`| head`), and that has found out."""
    read, write = os.pipe()
    gone = Guarded(os.fdopen(write, "w"))
    os.close(read)
    gone.write("x" * 100_000)
    gone.flush()
    assert gone.lost
    return gone


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
@pytest.mark.parametrize("args", [["space", "-n", "3"], ["validate"]])
def test_a_full_disk_under_the_output_is_one_line_and_exit_1(
    args: list[str], write_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    argv = [args[0], str(write_sweep()), *args[1:]]
    with open("/dev/full", "w") as full:
        proc = command(*argv, cwd=tmp_path, stdout=full)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [FULL], proc.stderr


@pytest.mark.parametrize("args", [["space", "-n", "2"], ["validate"]])
def test_a_closed_stdout_is_one_line_and_exit_1_not_a_bug(
    args: list[str], write_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    argv = [args[0], str(write_sweep()), *args[1:]]
    proc = command(*argv, cwd=tmp_path, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 1 and proc.stderr.splitlines() == [CLOSED], proc.stderr


def test_a_closed_stderr_fails_nothing(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "space", str(write_sweep()), "-n", "2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
        timeout=120,
        preexec_fn=lambda: os.close(2),
    )
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2


def test_space_stops_drawing_once_its_reader_is_gone(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    """`tuner space SWEEP -n 1000000000 | head -1` drew all of them into /dev/null (hours)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "space", str(write_sweep()), "-n", "1000000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # `head -1` is done
    try:
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == 0 and proc.stderr.read() == b""  # the reader gone is no failure
    assert time.monotonic() - started < 60


def test_a_reader_gone_is_no_output_error_and_a_full_disk_is(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = gone_reader()
    assert gone.reader_gone
    monkeypatch.setattr(sys, "stdout", gone)
    assert streams.output_lost() and streams.output_error() is None
    if os.path.exists("/dev/full"):
        full = Guarded(open("/dev/full", "w"))
        full.write("line\n")
        monkeypatch.setattr(sys, "stdout", full)
        error = streams.output_error()  # the buffered line is flushed: it fails there
        assert error is not None and error.errno == errno.ENOSPC and not full.reader_gone


def test_an_output_error_turns_a_success_into_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = Guarded(sys.stdout)
    failed._lose(OSError(errno.EIO, os.strerror(errno.EIO)))
    monkeypatch.setattr("tuner.cli.COMMANDS", {"down": lambda args: 0})
    monkeypatch.setattr(sys, "stdout", failed)
    assert main(["down"]) == 1
    assert capsys.readouterr().err == "tuner: cannot write the output: Input/output error\n"


def test_a_full_disk_while_a_command_writes_its_files_is_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def down(args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "f"))

    monkeypatch.setattr("tuner.cli.COMMANDS", {"down": down})
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    assert main(["down"]) == 1
    assert capsys.readouterr().err == f"tuner: No space left on device: {tmp_path / 'f'}\n"
    assert not (tmp_path / "cache").exists()  # nothing logged as a bug
