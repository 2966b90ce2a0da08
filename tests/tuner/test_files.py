"""Reading JSON-lines files that a crash may have cut short (the atomic writes are tested
with the export, tests/tuner/test_export_file.py)."""

from __future__ import annotations

from pathlib import Path

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
