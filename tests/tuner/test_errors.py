"""tuner.errors: how an error wrapped in a one-line message reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tuner import files
from tuner.errors import InputError, first_line


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_first_line_is_the_first_non_blank_line_cut_to_the_limit_and_marked() -> None:
    assert first_line(ValueError("\n  boom\nsecond line")) == "boom"
    assert first_line(ValueError("x" * 500)) == "x" * 197 + "..."
    assert first_line(ValueError("x" * 500), 10) == "x" * 7 + "..."
    assert first_line(ValueError("x" * 200)) == "x" * 200  # at the limit: whole


def test_first_line_of_an_error_that_says_nothing_is_the_fallback() -> None:
    assert first_line(ValueError()) == ""
    assert first_line(ValueError("  \n "), empty="ValueError") == "ValueError"


def test_first_line_survives_an_error_whose_str_fails() -> None:
    assert first_line(_Unprintable("a")) == "_Unprintable('a')"


def test_regular_size_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    data = tmp_path / "f.bin"
    data.write_bytes(b"12345")
    assert files.regular_size(data) == 5
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as caught:
        files.regular_size(fifo)
    assert caught.value.problems == [f"{fifo}: is not a regular file (a pipe, a socket or a device)"]
    with pytest.raises(InputError, match="is a folder, not a model file"):
        files.regular_size(tmp_path, "model file")
    with pytest.raises(InputError, match="no such file"):
        files.regular_size(tmp_path / "absent")
    with pytest.raises(InputError, match="cannot read"):
        files.regular_size(tmp_path / ("n" * 5000))
