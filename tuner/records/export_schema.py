"""An export file (and a retest of it) checked against its schema before it is trusted: every
section's keys, types, ranges and finite numbers, trial ids as names. Each problem is one
line naming the file, the key path, the value and the rule (:mod:`tuner.errors`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tuner.errors import NO_VALUE, did_you_mean, problem
from tuner.records import TrialStatus

# -- the schema ----------------------------------------------------

EXPORT_KEYS = ("metric", "mode", "score", "params", "config", "top", "provenance", "retest")
TOP_KEYS = ("params", "score", "trial", "round", "epochs", "status", "error", "retest", "metrics")
TOP_RETEST_KEYS = ("val", "test")
STATS_KEYS = ("mean", "std", "ci95", "scores")
RETEST_KEYS = (
    "metric",
    "mode",
    "seeds",
    "results",
    "ranking_changed",
    "drift",
    "tolerance",
    "messages",
    "created",
    "seconds",
    "top_k",
    "data",
)
RESULT_KEYS = ("trial", "params", "search_score", "val", "test", "diverged", "seconds")
MODES = ("max", "min")
MAX_ERROR = 1000  # characters of a top entry's error (tuner writes at most 500)
MAX_TOP = 10_000  # entries of ``top`` (and results of a retest)
MAX_PARAMS = 1000  # searched parameters of one configuration
MAX_ROUND = 10_000  # as a run directory's rounds
MAX_EPOCHS = 10**9
MAX_SEED = 2**63
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a trial's id: a name, never a path
_MISSING: Any = object()


class Checker:
    """Collects every problem of one export-file document; each names the file, the key
    path, the value and the rule (:func:`tuner.errors.problem`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self._keys: set[str] = set()

    def add(self, key: str, value: Any, rule: str) -> None:
        """One problem: ``key`` holds ``value`` (or :data:`NO_VALUE`), breaking ``rule``
        (the first problem of a key only)."""
        if key in self._keys and key:
            return
        self._keys.add(key)
        if len(self.problems) < 100:  # a hostile file's thousand problems: the first hundred say enough
            self.problems.append(problem(self.source, key, value, rule))

    def keys(self, d: Mapping[Any, Any], known: Sequence[str], where: str, what: str) -> None:
        """Every key of ``d`` is one of ``known``."""
        for k in list(d)[:1000]:
            if k not in known:
                hint = did_you_mean(str(k), known)
                self.add(_at(where, str(k)[:60]), NO_VALUE, f"is not a key of {what} ({hint}one of {', '.join(known)})")

    def configurations(
        self, value: Any, key: str, known: Sequence[str], what: str, many: str
    ) -> Iterator[tuple[int, str, Mapping[str, Any], Any]]:
        """The entries of a list of 1 to :data:`MAX_TOP` configurations (``many``: an export's
        ``top``, a retest's ``results``), each a mapping (``what``) of ``known`` keys with
        ``params``: yields each entry's index, key path, the entry and its checked ``params``
        (``_MISSING`` when absent)."""
        if not isinstance(value, list):
            self.add(key, NO_VALUE, f"must be a list, not {_kind(value)}")
            return
        if not 1 <= len(value) <= MAX_TOP:
            self.add(key, value, f"must list 1 to {MAX_TOP} {many}")
            return
        for i, entry in enumerate(value):
            where = f"{key}[{i}]"
            if not self.mapping(entry, where):
                continue
            self.keys(entry, known, where, what)
            params = _field(self, entry, "params", where, required=True)
            if params is not _MISSING:
                self.params(params, f"{where}.params")
            yield i, where, entry, params

    def mapping(self, value: Any, key: str) -> bool:
        if isinstance(value, Mapping):
            return True
        self.add(key, NO_VALUE, f"must be a mapping, not {_kind(value)}")
        return False

    def number(self, value: Any, key: str, low: float | None = None, nullable: bool = False) -> None:
        """A finite number (``nullable``: or null, for no finite value), at least ``low``."""
        if value is None and nullable:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(key, value, "must be a number" + (" or null" if nullable else "") + f", not {_kind(value)}")
        elif not math.isfinite(value):
            self.add(key, value, "must be a finite number" + (" (or null)" if nullable else ""))
        elif low is not None and value < low:
            self.add(key, value, f"must be >= {low:g}")

    def integer(self, value: Any, key: str, low: int, high: int) -> None:
        """An integer in ``[low, high)``."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, value, f"must be an integer, not {_kind(value)}")
        elif not low <= value < high:
            self.add(key, value, f"must be in [{low}, {high})")

    def string(self, value: Any, key: str, limit: int = 10_000, empty: bool = True) -> None:
        if not isinstance(value, str):
            self.add(key, value, f"must be a string, not {_kind(value)}")
        elif len(value) > limit or (not empty and not value):
            self.add(key, value, f"must be a string of {1 if not empty else 0} to {limit} characters")

    def boolean(self, value: Any, key: str) -> None:
        if not isinstance(value, bool):
            self.add(key, value, f"must be true or false, not {_kind(value)}")

    def choice(self, value: Any, key: str, choices: Sequence[str]) -> None:
        if not isinstance(value, str) or value not in choices:
            self.add(key, value, f"is not one of {', '.join(c if c else repr(c) for c in choices)}")

    def name(self, value: Any, key: str) -> None:
        """A trial's id: a name (letters, digits, ``_.-``, at most 100), never a path."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return  # an id YAML read as a number
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            self.add(
                key, value, "must be a trial's name: letters, digits, '_', '.' and '-' (at most 100), never a path"
            )

    def params(self, value: Any, key: str) -> None:
        """Searched values by dotted path (the paths and values are checked against ``config``
        by :func:`tuner.export_file.load`)."""
        if not self.mapping(value, key):
            return
        if len(value) > MAX_PARAMS:
            self.add(key, value, f"must hold at most {MAX_PARAMS} parameters")
            return
        for k in value:
            if not isinstance(k, str) or not k or len(k) > 200:
                self.add(key, k, "is not a parameter name: a parameter must be a dotted path into the config")

    def finite(self, value: Any, key: str, depth: int = 0) -> None:
        """No non-finite number anywhere inside ``value``."""
        if isinstance(value, float) and not math.isfinite(value):
            self.add(key, value, "must be a finite number (an export holds no NaN or infinity)")
        elif depth < 200 and isinstance(value, Mapping):
            for k, v in list(value.items())[:100_000]:
                self.finite(v, _at(key, str(k)[:60]), depth + 1)
        elif depth < 200 and isinstance(value, list):
            for i, v in enumerate(value[:100_000]):
                self.finite(v, f"{key}[{i}]", depth + 1)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _field(c: Checker, d: Mapping[str, Any], key: str, where: str, required: bool = False) -> Any:
    """``d[key]``, or ``_MISSING`` (a problem when ``required``)."""
    if key in d:
        return d[key]
    if required:
        c.add(_at(where, key), NO_VALUE, "is required")
    return _MISSING


def check_export(data: Any, source: str) -> list[str]:
    """Every problem of an export file's parsed content against the export's schema
    (``docs/design.md``): known keys, types, ranges, finite numbers, trial ids that are
    names, no duplicated ``top`` entry. ``config`` is checked as a sweep, and the parameters
    against it, by :func:`tuner.export_file.load`."""
    c = Checker(source)
    if not isinstance(data, Mapping):
        c.add("", NO_VALUE, "not an export file (the top level must be a mapping)")
        return c.problems
    missing = [k for k in ("metric", "mode", "score", "params", "config") if k not in data]
    if missing:
        return [f"{source}: not an export file (missing {', '.join(missing)})"]
    c.keys(data, EXPORT_KEYS, "", "an export")
    c.string(data["metric"], "metric", 200, empty=False)
    c.choice(data["mode"], "mode", MODES)
    c.number(data["score"], "score", nullable=True)
    c.params(data["params"], "params")
    c.mapping(data["config"], "config")
    top = _field(c, data, "top", "")
    if top is not _MISSING:
        _check_top(c, top)
    provenance = _field(c, data, "provenance", "")
    if provenance is not _MISSING:
        c.mapping(provenance, "provenance")
    retest = _field(c, data, "retest", "")
    if retest is not _MISSING and retest is not None:
        _check_retest(c, retest, "retest")
    c.finite(data, "")  # anywhere else (provenance, config...): the schema's own rules come first
    return c.problems


def _check_top(c: Checker, top: Any) -> None:
    seen: dict[str, int] = {}
    many = "configurations (leave it out for none)"
    for i, where, entry, params in c.configurations(top, "top", TOP_KEYS, "a top entry", many):
        for key, check in (
            ("score", lambda v, k: c.number(v, k, nullable=True)),
            ("round", lambda v, k: c.integer(v, k, 0, MAX_ROUND)),
            ("epochs", lambda v, k: c.integer(v, k, 0, MAX_EPOCHS)),
            ("status", lambda v, k: c.choice(v, k, ["", *(s.value for s in TrialStatus)])),
            ("error", lambda v, k: None if v is None else c.string(v, k, MAX_ERROR)),
        ):
            value = _field(c, entry, key, where)
            if value is not _MISSING:
                check(value, f"{where}.{key}")
        trial = entry.get("trial")
        if trial is not None:
            c.name(trial, f"{where}.trial")
        metrics = entry.get("metrics")
        if metrics is not None and c.mapping(metrics, f"{where}.metrics"):
            if len(metrics) > 1000:
                c.add(f"{where}.metrics", metrics, "must hold at most 1000 metrics")
            for k, v in list(metrics.items())[:1000]:
                c.string(k, f"{where}.metrics", 200, empty=False)
                c.number(v, f"{where}.metrics.{str(k)[:60]}", nullable=True)
        retest = entry.get("retest")
        if retest is not None and c.mapping(retest, f"{where}.retest"):
            c.keys(retest, TOP_RETEST_KEYS, f"{where}.retest", "a top entry's retest")
            if "val" in retest:
                _check_stats(c, retest["val"], f"{where}.retest.val")
            _check_stats_by_name(c, retest.get("test", {}), f"{where}.retest.test")
        if isinstance(params, Mapping):
            key = identity(trial, params)
            if key in seen:
                c.add(where, NO_VALUE, f"repeats top[{seen[key]}] (the same trial or parameters)")
            seen.setdefault(key, i)


def identity(trial: Any, params: Mapping[str, Any]) -> str:
    """What identifies a configuration of an export across retests: its trial id, else its
    parameters."""
    return str(trial or json.dumps(dict(params), sort_keys=True, default=str))


def _check_stats(c: Checker, value: Any, where: str) -> None:
    if not c.mapping(value, where):
        return
    c.keys(value, STATS_KEYS, where, "statistics")
    if "mean" not in value:
        c.add(f"{where}.mean", NO_VALUE, "is required")
    else:
        c.number(value["mean"], f"{where}.mean", nullable=True)
    if "std" in value:
        c.number(value["std"], f"{where}.std", low=0, nullable=True)
    ci = value.get("ci95")
    if ci is not None:
        if not isinstance(ci, list) or len(ci) != 2:
            c.add(f"{where}.ci95", ci, "must be [low, high] or null")
        else:
            for j, x in enumerate(ci):
                c.number(x, f"{where}.ci95[{j}]", nullable=True)
    if "scores" in value:
        scores = value["scores"]
        if not isinstance(scores, list) or len(scores) > 1_000_000:
            c.add(f"{where}.scores", scores, "must be a list of scores")
        else:
            for j, x in enumerate(scores[:1000]):
                c.number(x, f"{where}.scores[{j}]", nullable=True)


def _check_stats_by_name(c: Checker, value: Any, where: str) -> None:
    if not c.mapping(value, where):
        return
    for k, v in list(value.items())[:1000]:
        c.string(k, where, 200, empty=False)
        _check_stats(c, v, f"{where}.{str(k)[:60]}")


def check_retest(data: Any, source: str, prefix: str = "") -> list[str]:
    """Every problem of one retest (an export's ``retest:`` section, or one line of
    ``best.retest.jsonl``) against its schema."""
    c = Checker(source)
    _check_retest(c, data, prefix)
    if isinstance(data, Mapping) and not c.problems:
        c.finite(data, prefix)
    return c.problems


def _check_retest(c: Checker, data: Any, where: str) -> None:
    if not isinstance(data, Mapping):
        c.add(where, NO_VALUE, f"must be a mapping, not {_kind(data)}")
        return
    c.keys(data, RETEST_KEYS, where, "a retest")
    checks: dict[str, Callable[[Any, str], None]] = {
        "metric": lambda v, k: c.string(v, k, 200, empty=False),
        "mode": lambda v, k: c.choice(v, k, MODES),
        "ranking_changed": c.boolean,
        "drift": c.boolean,
        "tolerance": lambda v, k: c.number(v, k, low=0),
        "created": lambda v, k: c.string(v, k, 100),
        "seconds": lambda v, k: c.number(v, k, low=0),
        "top_k": lambda v, k: c.integer(v, k, 0, MAX_TOP + 1),
        "data": lambda v, k: None if c.mapping(v, k) else None,
    }
    for key, check in checks.items():
        if key in data:
            check(data[key], _at(where, key))
    seeds = data.get("seeds", [])
    if not isinstance(seeds, list) or len(seeds) > 1_000_000:
        c.add(_at(where, "seeds"), seeds, "must be a list of seeds")
    else:
        for j, s in enumerate(seeds[:1000]):
            c.integer(s, f"{_at(where, 'seeds')}[{j}]", 0, MAX_SEED)
    messages = data.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages[:1000]):
        c.add(_at(where, "messages"), messages, "must be a list of strings")
    results = _field(c, data, "results", where, required=True)
    if results is _MISSING:
        return
    key = _at(where, "results")
    for _, at, r, _ in c.configurations(results, key, RESULT_KEYS, "a retest result", "re-tested configurations"):
        if r.get("trial") is not None:
            c.name(r["trial"], f"{at}.trial")
        if "search_score" in r:
            c.number(r["search_score"], f"{at}.search_score", nullable=True)
        val = _field(c, r, "val", at, required=True)
        if val is not _MISSING:
            _check_stats(c, val, f"{at}.val")
        _check_stats_by_name(c, r.get("test", {}), f"{at}.test")
        if "diverged" in r:
            c.integer(r["diverged"], f"{at}.diverged", 0, MAX_SEED)
        if "seconds" in r:
            c.number(r["seconds"], f"{at}.seconds", low=0)
