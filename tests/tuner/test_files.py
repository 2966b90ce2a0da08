"""Reading JSON-lines files that a crash may have cut short, and values Python refuses (the atomic writes are tested
with the export, tests/tuner/test_export_file.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.errors import InputError
from tuner.files import load_json, load_yaml, read_json_lines


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

    ctx = multiprocessing.get_context("spawn")  # a fork of this threaded process may wait on a lock forever
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

    from tuner.lock import lock_path, locked

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "9" * 5000, r"^s\.yaml:1:4: invalid YAML: 9{30}: Exceeds the limit \(4300 digits\)"),
        ("a:\n  b: 2020-13-45\n", r"^s\.yaml:2:6: invalid YAML: 2020-13-45: month must be in 1\.\.12$"),
        ("a: [1, -" + "9" * 5000 + "]", r"^s\.yaml:1:8: invalid YAML: -9{29}: Exceeds the limit"),
    ],
)
def test_a_yaml_value_python_refuses_is_bad_input_naming_its_place(text: str, expected: str) -> None:
    """PyYAML's own ValueError (an int past Python's 4300 digits, a date that is none) was an
    internal error of every reader: sweep files, exports, run.json, --set."""
    with pytest.raises(InputError, match=expected):
        load_yaml(text, "s.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": ' + "9" * 5000 + "}", "e.json: invalid JSON: an integer of 5000 digits (at most 4300)"),
        ('{"a": 1, "b": {"c": 1, "c": 2}}', "e.json: invalid JSON: duplicate key 'c'"),
        ('{"metric": "val_loss", "metric": "val_acc"}', "e.json: invalid JSON: duplicate key 'metric'"),
    ],
)
def test_json_that_repeats_a_key_or_holds_a_huge_int_is_bad_input(text: str, expected: str) -> None:
    """As YAML's loader refuses a repeated key: the reader of a file and tuner must not
    disagree on what it says (JSON's last-wins)."""
    with pytest.raises(InputError) as e:
        load_json(text, "e.json")
    assert str(e.value) == expected


def test_json_within_the_limits_reads_as_before() -> None:
    big = "-" + "9" * 4300
    assert load_json('{"a": ' + big + ', "b": [{"c": NaN}, {"c": 1}]}', "e.json")["a"] == int(big)


def test_a_write_the_disk_refuses_names_its_file_and_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails the write itself (errno ENOSPC, no file name): the error names the
    file being written, the file keeps its old content, and no temporary file stays."""
    import errno
    import os

    from tuner.files import write_text

    target = tmp_path / "run.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        write_text(target, "new")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run.json"]
