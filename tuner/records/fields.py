"""Reading typed fields out of a file's plain data: each problem names the file and key."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from tuner.errors import InputError

_KIND = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
}


class Fields:
    """Reads typed fields out of one mapping of a file, each problem an :class:`InputError`
    naming the file and the key path."""

    def __init__(self, data: Any, source: str, prefix: str = "") -> None:
        self.source, self.prefix = source, prefix
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: {prefix + ': ' if prefix else ''}must be a mapping, not {type(data).__name__}")
        self.data = data

    def where(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., nullable: bool = False) -> Any:
        if key not in self.data or (self.data[key] is None and default is not ... and not nullable):
            if default is ...:
                raise InputError(f"{self.source}: {self.where(key)}: is required")
            return default
        value = self.data[key]
        if value is None and nullable:
            return None
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_KIND.get(k, k.__name__) for k in kinds)
            raise InputError(f"{self.source}: {self.where(key)}: must be {names}, not {type(value).__name__}")
        return value

    def number(self, key: str, default: Any = ..., nullable: bool = False) -> float | None:
        """A number; a non-finite one (or null) reads as ±inf/NaN only where ``nullable``."""
        value = self.get(key, (int, float), default, nullable)
        return None if value is None else float(value)

    def sub(self, key: str) -> Fields:
        return Fields(self.get(key, dict), self.source, self.where(key))

    def items(self, key: str, default: Any = ...) -> list[Fields]:
        values = self.get(key, list, default)
        return [Fields(v, self.source, f"{self.where(key)}[{i}]") for i, v in enumerate(values or [])]


def plain(obj: Any) -> Any:
    """A record as plain data (enums as their values)."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
