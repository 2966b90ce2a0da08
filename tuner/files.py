"""Reading and writing the files a user hands tuner and the files a run leaves behind.

Writes that matter (an export, a history, run metadata) are atomic: a file is either the old
version or the new one, never half of either, whatever kills the process in between. JSON
is strict (a non-finite number is written as ``null``, never ``Infinity``).

Reads of a user's file are bounded: at most :data:`MAX_FILE_BYTES`, YAML aliases expanding to at most
:data:`MAX_YAML_NODES` nodes (a kilobyte "billion laughs" file is refused at once), nested at most
:data:`MAX_YAML_DEPTH` brackets deep; a mapping that repeats a key is an error naming the line, not last-wins.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import InputError
from tuner.lock import locked

MAX_FILE_BYTES = 4 * 1024 * 1024  # a sweep or export file is a few KB; this is generous
MAX_YAML_NODES = 200_000  # after aliases are expanded
MAX_YAML_DEPTH = 200  # nested [ ] and { }: a sweep nests five deep
MAX_LINE_BYTES = 1024 * 1024  # one JSON line (a trial's report, a retest): a few KB
MAX_LINES_FILE_BYTES = 256 * 1024 * 1024  # a JSON-lines file: 100,000 epochs of 2 KB reports


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:100]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None and e.errno is not None:  # a full disk fails the write itself: name the file
            raise OSError(e.errno, e.strerror, str(target)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    os.umask(mask := os.umask(0))
    return mask


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Infinity), tuples as lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # a numpy scalar
        return strict(obj.item())
    return obj


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`strict`); anything else unknown as ``str``."""
    return json.dumps(strict(obj), indent=indent, default=str, allow_nan=False)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented strict JSON."""
    return write_text(path, dumps_json(obj, indent=2) + "\n")


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


# -- reading ----------------------------------------------------------------------------------


NOT_REGULAR = "is not a regular file (a pipe, a socket or a device)"


def article(noun: str) -> str:
    """``noun`` after its indefinite article: "a file", "an export file"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def unreachable(path: str | os.PathLike[str]) -> str | None:
    """What the system says when it cannot reach ``path`` although it may be there (a loop of
    symbolic links, no permission on a folder on the way, a file where a folder should be);
    None when it can, or when there is simply nothing there. ``Path.exists`` and ``is_file``
    answer False to a loop of links, which a caller would report as "no such file"."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        return getattr(e, "strerror", None) or type(e).__name__
    return None


def regular_size(path: str | os.PathLike[str], what: str = "file") -> int:
    """The size of a user's file, checked to be one: a pipe, a socket or a device is refused
    before it is opened (reading a pipe holds the command until someone writes to it).

    Raises:
        InputError: missing, a folder, not a regular file, or its folder unreadable.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:  # a name too long, no permission, a NUL in the name...
        raise InputError(
            f"{str(path)[:200]}: cannot read ({getattr(e, 'strerror', None) or type(e).__name__})"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not {article(what)}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: {NOT_REGULAR}")
    return st.st_size


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES, what: str = "file") -> bytes:
    """A user's file, at most ``limit`` bytes.

    Raises:
        InputError: missing, a folder, not a regular file, unreadable or larger than ``limit``.
    """
    p = Path(path)
    regular_size(p, what)
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit // (1024 * 1024)} MB: not {article(what)}")
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys and counts what aliases expand to."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {str(key)[:60]!r} (first at line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:  # a value Python refuses: an int of 5,000 digits, a date 2020-13-45
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:
            what = _one_line(str(e), 80)
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!s:.30}: {what}", node.start_mark
            ) from None


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Nodes ``node`` stands for once every alias is expanded (shared nodes counted once a
    use), stopping as soon as ``limit`` is passed."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = limit + 1  # a cycle (a recursive alias) counts as too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, memo, limit)
        if total > limit:
            break
    memo[id(node)] = total
    return total


def _flow_depth(data: bytes | str) -> int:
    """The deepest nesting of ``[`` and ``{`` (an upper bound: brackets inside quotes count too)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= MAX_YAML_DEPTH:
        return 0
    depth = deepest = 0
    for c in raw.translate(None, _NOT_BRACKETS):
        depth = depth + 1 if c in (0x5B, 0x7B) else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def load_yaml(data: bytes | str, source: str) -> Any:
    """Parse a user's YAML (safe: plain values only), bounded as the module docstring says.

    Raises:
        InputError: invalid YAML, a duplicate key, or aliases expanding past the limit,
            naming the line where it can.
    """
    if _flow_depth(data) > MAX_YAML_DEPTH:  # PyYAML's scanner is quadratic in it: refuse before parsing
        raise InputError(f"{source}: invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep")
    try:
        loader = _Loader(data)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}, MAX_YAML_NODES) > MAX_YAML_NODES:
                what = (
                    f"YAML aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)"
                    if _has_alias(data)
                    else f"holds more than {MAX_YAML_NODES} values"
                )
                raise InputError(f"{source}: {what}: refused")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        raise InputError(f"{where}: invalid YAML: {_one_line(e.problem or e.context)}") from None
    except yaml.YAMLError as e:  # e.g. a byte that is not text: PyYAML's message spans lines
        raise InputError(f"{source}: invalid YAML: {_one_line(str(e))}") from None
    except RecursionError:
        raise InputError(f"{source}: invalid YAML: nested too deeply") from None


def _has_alias(data: bytes | str) -> bool:
    """Whether the document uses an alias (``*name``), as far as its tokens tell."""
    try:
        return any(isinstance(t, yaml.AliasToken) for t in yaml.scan(data, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return True


def _one_line(text: str | None, limit: int = 200) -> str:
    """``text`` on one line (a problem is one line), at most ``limit`` characters."""
    return " ".join(str(text or "").split())[:limit]


def load_json(data: bytes | str, source: str) -> Any:
    """Parse JSON (NaN and Infinity accepted on read, as Ray writes them).

    Raises:
        InputError: invalid JSON, naming the line; a repeated key; an integer Python refuses.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_int)
    except UnicodeDecodeError:
        raise InputError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # _unique_keys, _int
        raise InputError(f"{source}: invalid JSON: {_one_line(str(e))}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # as YAML's loader refuses it: a reader and tuner must not disagree
            raise ValueError(f"duplicate key {key[:60]!r}")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 4300:  # Python's own limit: its ValueError would name no file
        raise ValueError(f"an integer of {len(text)} digits (at most 4300)")
    return int(text)


def read_json_lines(
    path: str | os.PathLike[str], errors: str = "strict", limit: int = MAX_LINES_FILE_BYTES
) -> list[Any]:
    """Every JSON value of a JSON-lines file, one a line; a line that does not parse (cut short
    by a crash mid-write, or longer than :data:`MAX_LINE_BYTES`) is skipped. ``errors``: how
    undecodable bytes are handled, as in :meth:`bytes.decode`.

    Raises:
        InputError: not a regular file, or larger than ``limit`` (:func:`json_lines`).
    """
    return [v for v in json_lines(path, errors, limit) if v is not NOT_JSON]


NOT_JSON = object()  # what json_lines yields for a line that is not JSON


def json_lines(
    path: str | os.PathLike[str], errors: str = "strict", limit: int = MAX_LINES_FILE_BYTES
) -> Iterator[Any]:
    """Each non-empty line of a JSON-lines file as its value, or :data:`NOT_JSON`, read a line
    at a time: what a file costs is bounded by ``limit`` and :data:`MAX_LINE_BYTES` (a sparse
    file of 20 GB costs no memory), and a pipe is refused instead of waited on.

    Raises:
        InputError: not a regular file, or larger than ``limit``; OSError: unreadable.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a pipe opened without a writer: not waited on
    with open(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: {NOT_REGULAR}")
        if size > limit:
            raise InputError(f"{path}: {size:,} bytes, more than the {limit:,} this file may hold: not read")
        while line := f.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:  # skipped whole: its rest, up to its end
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE_BYTES)
                yield NOT_JSON
            elif line.strip():
                text = line.decode("utf-8", errors)  # strict: raises UnicodeDecodeError
                try:
                    yield json.loads(text)
                except (ValueError, RecursionError):
                    yield NOT_JSON


def append_line(path: str | os.PathLike[str], obj: Any) -> None:
    """Append one strict JSON line: rewrites the whole file atomically, so a reader never sees
    a torn line (histories are small), under :func:`tuner.lock.locked`, so that two processes appending at
    once both keep their line."""
    target = Path(path)
    with locked(target):
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        write_text(target, old + dumps_json(obj) + "\n")
