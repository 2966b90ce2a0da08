"""The sweep file: loading, validation and the typed, fully resolved spec.

A sweep file (contract in ``docs/design.md``, every key in ``docs/sweep-file.md``) is read
safely and checked once, here, at the boundary. Every problem is collected and reported
together, one line each, naming the file, the key path, the value and the rule; unknown keys
are errors, so a typo fails instead of being silently ignored. All defaults live in the
schema (:mod:`tuner.spec.schema`).

    sweep = load_sweep("sweeps/quickstart.yaml")   # raises InputError listing every problem
    sweep.base_config()   # what a trial's function gets before the searched values are applied
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import InputError, problem
from tuner.files import load_yaml, read_bytes
from tuner.space import Parameter
from tuner.spec.schema import BUILTIN_FUNCTION, NAME_PATTERN
from tuner.spec.validate import Validator

__all__ = [
    "Sweep",
    "SearchSpec",
    "RefineSpec",
    "SchedulerSpec",
    "ResourcesSpec",
    "load_sweep",
    "from_dict",
    "set_dotted",
    "apply_overrides",
    "parse_assignments",
    "BUILTIN_FUNCTION",
]


@dataclass(frozen=True)
class RefineSpec:
    """``search.refine``: coarse-to-fine rounds after the first (defaults in the schema)."""

    rounds: int
    top_k: int
    num_samples: int
    margin: float


@dataclass(frozen=True)
class SearchSpec:
    """``search``: what is searched and how."""

    method: str
    num_samples: int
    seed: int
    max_concurrent: int
    parameters: tuple[Parameter, ...]
    refine: RefineSpec | None

    def rounds(self) -> int:
        """The first round plus the refine rounds."""
        return 1 + (self.refine.rounds if self.refine else 0)

    def round_size(self, index: int) -> int:
        """Trials in round ``index``."""
        return self.num_samples if index == 0 or self.refine is None else self.refine.num_samples


@dataclass(frozen=True)
class SchedulerSpec:
    """``scheduler``: ASHA over reports (epochs), or none."""

    name: str
    grace_period: int
    reduction_factor: float
    brackets: int
    max_t: int | None  # the budget in reports; None: a function with no stated budget and no ASHA

    def milestones(self) -> list[int]:
        """The epochs at which ASHA judges a trial, in every bracket, ascending (none without
        ASHA). Ray's ASHA puts rung k of bracket s at ``grace · η^(k+s)`` and judges a trial at
        its first report at or past it: epoch ⌈grace · η^(k+s)⌉. The result batching ends a
        batch there, the progress and the report draw them; one formula for all three."""
        if self.name != "asha" or self.max_t is None:
            return []
        out: set[int] = set()
        for s in range(self.brackets):
            # the very expression of ray.tune.schedulers.async_hyperband._Bracket
            rungs = int(np.log(self.max_t / self.grace_period) / np.log(self.reduction_factor) - s + 1)
            for k in range(rungs):
                out.add(math.ceil(self.grace_period * self.reduction_factor ** (k + s)))
        return sorted(out)

    def describe(self) -> str:
        if self.name == "asha":
            n = f", {self.brackets} brackets" if self.brackets > 1 else ""
            return f"ASHA (grace {self.grace_period}, reduction {self.reduction_factor:g}, max {self.max_t} epochs{n})"
        return f"no early stopping ({self.max_t} epochs each)" if self.max_t else "no early stopping"


@dataclass(frozen=True)
class ResourcesSpec:
    """``resources``: per trial."""

    cpu: float
    gpu: float


@dataclass(frozen=True)
class Sweep:
    """A validated sweep with every default applied."""

    name: str
    metric: str
    mode: str
    function: str | None  # the user's "package.module:function"; None: the built-in BN trainer
    config: dict[str, Any]  # what the function gets (built-in: {"model": ..., "train": ...})
    data: dict[str, Any] | None
    search: SearchSpec
    scheduler: SchedulerSpec
    resources: ResourcesSpec
    max_failures: int
    seed: int  # run.seed of the search's trials (built-in: train.seed)
    source: str = "<dict>"  # the file it came from
    sha256: str = ""  # of the file's bytes
    base_dir: str | None = None  # the sweep file's folder: where its relative paths and modules are found
    overrides: dict[str, Any] = field(default_factory=dict)  # --set KEY=VALUE applied on load
    trial_timeout: float | None = None  # seconds a trial may go without a report; None: no limit

    @property
    def builtin(self) -> bool:
        """True for the built-in BN trainer (``model`` and ``train`` sections)."""
        return self.function is None

    @property
    def trainer(self) -> str:
        """The trial function's reference (the built-in one's when none is named)."""
        return self.function or BUILTIN_FUNCTION

    @property
    def model(self) -> dict[str, Any]:
        """The built-in trainer's ``model`` section (empty for a function)."""
        return self.config.get("model", {}) if self.builtin else {}

    @property
    def train(self) -> dict[str, Any]:
        """The built-in trainer's ``train`` section (empty for a function)."""
        return self.config.get("train", {}) if self.builtin else {}

    @property
    def max_t(self) -> int | None:
        """A trial's full budget in reports (epochs); None when a function states none."""
        return self.scheduler.max_t

    def base_config(self) -> dict[str, Any]:
        """What a trial's function gets before its searched values are applied."""
        return copy.deepcopy(self.config)

    def code_refs(self) -> list[str]:
        """Every ``package.module:function`` this sweep names (to import and to ship)."""
        refs = [self.function] if self.function else []
        searched = [
            v for p in self.search.parameters if self.builtin and p.path == "model.name" for v in p.values or ()
        ]
        for ref in (self.model.get("name"), (self.data or {}).get("name"), *searched):
            if isinstance(ref, str) and ":" in ref and ref not in refs:
                refs.append(ref)
        return refs

    def to_dict(self) -> dict[str, Any]:
        """The sweep-file form, every default written out; :func:`from_dict` reads it back."""
        search = {k: v for k, v in asdict(self.search).items() if k not in ("parameters", "refine")}
        search["parameters"] = {p.path: p.to_dict() for p in self.search.parameters}
        if self.search.refine is not None:
            search["refine"] = asdict(self.search.refine)
        out: dict[str, Any] = {"name": self.name, "metric": self.metric, "mode": self.mode}
        if self.builtin:
            out.update(data=copy.deepcopy(self.data), **self.base_config())
        else:
            out.update(function=self.function, config=self.base_config(), seed=self.seed)
            if self.data is not None:
                out["data"] = copy.deepcopy(self.data)
        out.update(
            search=search,
            scheduler=asdict(self.scheduler),
            resources=asdict(self.resources),
            max_failures=self.max_failures,
        )
        if self.trial_timeout is not None:  # written only when set: exports of older runs read alike
            out["trial_timeout"] = self.trial_timeout
        return out


def load_sweep(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    document: tuple[bytes, Any] | None = None,
) -> Sweep:
    """Read, validate and resolve a sweep file (or an export file: its ``config``, the best
    configuration with nothing searched).

    Args:
        path: the YAML file.
        overrides: top-level or dotted keys set after reading (e.g. ``{"name": "x",
            "search.num_samples": 4}``), validated like the file's own keys.
        document: the file's bytes and their parsed content, where the caller has read them
            already (:func:`tuner.export_file.load_sweep`); else the file is read here.

    Raises:
        InputError: every problem found, one line each.
    """
    source = str(path)
    if document is None:
        raw_bytes = read_bytes(path, what="sweep file")
        raw = load_yaml(raw_bytes, source)
    else:
        raw_bytes, raw = document[0], copy.deepcopy(document[1])
    if raw is None:
        raise InputError(f"{source}: the file is empty")
    if not isinstance(raw, dict):
        raise InputError(f"{source}: the top level must be a mapping of keys, not a {type(raw).__name__}")
    if is_export(raw):  # an export file: run its config (the best configuration, nothing searched)
        if not isinstance(raw["config"], dict):
            raise InputError(f"{source}: config: must be a mapping")
        raw = raw["config"]
    apply_overrides(raw, overrides or {}, source)
    if raw.get("name") is None:
        raw["name"] = safe_name(Path(path).stem)
    return from_dict(
        raw,
        source=source,
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        base_dir=Path(path).parent,
        overrides=overrides,
    )


def safe_name(text: str) -> str:
    """``text`` made a valid run name (unsafe characters become ``-``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100]
    return name if name and NAME_PATTERN.fullmatch(name) else "sweep"


def is_export(raw: Mapping[str, Any]) -> bool:
    """Whether a file's parsed content is an export file (tuner.export_file), not a sweep file."""
    return all(k in raw for k in ("config", "params", "score", "metric"))


def from_dict(
    raw: Mapping[str, Any],
    source: str = "<dict>",
    sha256: str = "",
    base_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    offline: bool = False,
) -> Sweep:
    """Validate and resolve a sweep already parsed into a mapping (see :func:`load_sweep`).

    ``offline``: check the form of what the sweep names but import no code and look for no
    file (reading a run directory's ``sweep.yaml`` for a report or an export runs nothing).
    """
    folder = Path(base_dir).resolve() if base_dir is not None else None
    v = Validator(source, folder, offline)
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: the top level must be a mapping of keys")
    s = v.sweep(raw)
    if v.problems:
        raise InputError(v.problems)
    search = s["search"]
    refine = RefineSpec(**search.pop("refine")) if search.get("refine") else None
    return Sweep(
        name=s["name"] or "sweep",
        metric=s["metric"],
        mode=s["mode"],
        function=s["function"],
        config=s["config"],
        data=s["data"],
        search=SearchSpec(**{**search, "parameters": tuple(search["parameters"]), "refine": refine}),
        scheduler=SchedulerSpec(**s["scheduler"]),
        resources=ResourcesSpec(**s["resources"]),
        max_failures=s["max_failures"],
        trial_timeout=s["trial_timeout"],
        seed=s["seed"],
        source=source,
        sha256=sha256,
        base_dir=str(folder) if folder else None,
        overrides=dict(overrides or {}),
    )


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], source: str = "--set") -> None:
    """Set each dotted key of ``overrides`` in ``raw`` (see :func:`set_dotted`), a mapping
    before the keys inside it whatever their order: ``train={}`` and ``train.lr=0.5`` give
    ``train: {lr: 0.5}``.

    Raises:
        InputError: every key that cannot be set, one line each, naming ``source``.
    """
    problems = []
    for key in sorted(overrides, key=lambda k: k.count(".")):  # stable: same depth, given order
        try:
            set_dotted(raw, key, overrides[key], source)
        except InputError as e:
            problems.extend(e.problems)
    if problems:
        raise InputError(problems)


def set_dotted(raw: dict[str, Any], key: str, value: Any, source: str = "--set") -> None:
    """Set ``raw[a][b] = value`` for the key ``"a.b"``, creating mappings on the way.

    Under ``search.parameters.`` the rest is a parameter's own dotted path, matched against the
    parameters ``raw`` has (the longest that fits): ``search.parameters.train.lr.min`` sets
    ``min`` of ``train.lr``; ``search.parameters.train.lr`` (a mapping) adds or replaces it.

    Raises:
        InputError: an empty segment in ``key``, or a key under ``search.parameters.`` that
            addresses no parameter.
    """
    parts = key.split(".")
    if not all(parts):
        raise InputError(problem(source, key, value, "is not a key: a dotted path with no empty part (train.lr)"))
    prefix = "search.parameters."
    if key.startswith(prefix):
        _set_parameter(raw, key, key[len(prefix) :], value, source)
        return
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _set_parameter(raw: dict[str, Any], key: str, rest: str, value: Any, source: str) -> None:
    """``set_dotted`` for ``search.parameters.<parameter>[.<field>]``."""
    search = raw.get("search")
    params = search.get("parameters") if isinstance(search, dict) else None
    known = [str(p) for p in params] if isinstance(params, dict) else []
    match = max((p for p in known if rest == p or rest.startswith(p + ".")), key=len, default=None)
    if match is None and isinstance(value, dict):  # a new parameter
        match = rest
    if match is None:
        raise InputError(
            problem(
                source,
                key,
                value,
                f"addresses no parameter of search.parameters (it has: {', '.join(known[:12]) or 'none'}): "
                "search.parameters.PATH.FIELD=V changes one of a parameter's fields (train.lr.max=0.5), "
                "search.parameters.PATH={...} adds or replaces a parameter",
            )
        )
    if not isinstance(search, dict):
        raw["search"] = search = {}
    if not isinstance(search.get("parameters"), dict):
        search["parameters"] = {}
    params = search["parameters"]
    if rest == match:
        params[match] = value
        return
    if not isinstance(params.get(match), dict):
        params[match] = {}
    params[match][rest[len(match) + 1 :]] = value


def parse_assignments(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["train.epochs=5"]`` -> ``{"train.epochs": 5}``: values read as YAML (``5`` a number,
    ``[64, 64]`` a list, ``sgd`` a string).

    Raises:
        InputError: a pair that is not KEY=VALUE, naming ``flag``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", key) or not all(key.split(".")):
            example = "seed=7" if flag == "--data" else "train.epochs=5"
            raise InputError(f"{flag}: {pair[:60]!r} must be KEY=VALUE (e.g. {flag} {example})")
        try:
            out[key] = load_yaml(value, flag) if value.strip() else ""
        except InputError:
            out[key] = value
    return out
