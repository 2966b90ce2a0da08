"""Reading JSON-lines files that a crash may have cut short (the atomic writes are tested
with the export, tests/tuner/test_export_file.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.files import read_json_lines


def test_json_lines_keep_every_whole_line_and_skip_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(b'{"epoch": 1}\n\n{"epoch": 2}\n{"epoch": 3, "val_\xc3')  # cut inside a UTF-8 character
    assert read_json_lines(path, errors="replace") == [{"epoch": 1}, {"epoch": 2}]
    with pytest.raises(UnicodeDecodeError):
        read_json_lines(path)  # strict by default, as the histories were read before
    path.write_text('{"a": 1}\n{"b": [1, 2]}\n')
    assert read_json_lines(path) == [{"a": 1}, {"b": [1, 2]}]


def _append_many(path: str, who: str, start: Any, n: int) -> None:
    from tuner.files import append_line

    start.wait()
    for i in range(n):
        append_line(path, {"who": who, "i": i})


def test_concurrent_appends_all_keep_their_line(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "best.retest.jsonl"
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_append_many, args=(str(path), who, start, 60)) for who in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    lines = read_json_lines(path)
    assert len(lines) == 180  # none lost to another's read-modify-rewrite
    for who in "abc":
        assert [x["i"] for x in lines if x["who"] == who] == list(range(60))


def test_the_lock_of_a_file_is_held_while_the_block_runs(tmp_path: Path) -> None:
    import fcntl
    import os

    from tuner.files import lock_path, locked

    target = tmp_path / "best.yaml"
    with locked(target):
        fd = os.open(lock_path(target), os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open: another holder, refused
        finally:
            os.close(fd)
    assert lock_path(target).parent.name == "locks" and not target.exists() and not any(tmp_path.iterdir())
    with locked(target):  # released at the block's end
        pass
