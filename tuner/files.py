"""Atomic writes: a file that matters (an export, a history, run metadata) is either the old
version or the new one, never half of either, whatever kills the process in between. And
the reading of JSON-lines files that a crash may have cut short (Ray Tune's result.json)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


class _Dumper(yaml.SafeDumper):
    """Block-style YAML, keys in their given order, no anchors, short scalar lists inline."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(x, (int, float, str, bool)) or x is None for x in data) and len(data) <= 16
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def dump_yaml(obj: Any) -> str:
    """``obj`` as YAML text (see :class:`_Dumper`)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_yaml(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as YAML (see :func:`dump_yaml`)."""
    return write_text(path, dump_yaml(obj))


def read_json_lines(path: str | os.PathLike[str], errors: str = "strict") -> list[Any]:
    """Every JSON value of a JSON-lines file, one a line; a line that does not parse (cut short
    by a crash mid-write) is skipped. ``errors``: how undecodable bytes are handled, as in
    :meth:`bytes.decode`."""
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors=errors).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_line(path: str | os.PathLike[str], obj: Any) -> None:
    """Append one JSON line: rewrites the whole file atomically, so a reader never sees a
    torn line (histories are small)."""
    target = Path(path)
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_text(target, old + json.dumps(obj, default=str) + "\n")
