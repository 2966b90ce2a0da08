"""The sweep file: loading, validation and the typed, fully resolved spec.

A sweep file (contract in DESIGN.md) is read with ``yaml.safe_load`` and checked once,
here, at the boundary. Every problem is collected and reported together, one line each,
naming the file, the key path, the value and the rule; unknown keys are errors, so a typo
fails instead of being silently ignored. All defaults live in the ``*_FIELDS`` tables below.

    sweep = load_sweep("sweeps/quickstart.yaml")   # raises InputError listing every problem
    sweep.base_config()   # {"data": {...}, "model": {...}, "train": {...}} every default applied
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from models.data import SOURCE_OPTIONS, SOURCES
from models.train import LR_SCHEDULES, OPTIMIZERS
from tuner.errors import NO_VALUE, InputError, problem
from tuner.space import DISTRIBUTIONS, INT_DISTRIBUTIONS, Parameter, bound_rules

METRICS = {"val_acc": "max", "val_loss": "min", "train_loss": "min"}  # metric -> the mode that is better
METHODS = ("random", "grid", "tpe")
SCHEDULERS = ("asha", "none")
MODELS = ("mlp", "cnn")
_REQUIRED: Any = object()


@dataclass(frozen=True)
class Field:
    """One key of a section: its type, default and rule."""

    kind: str  # int | float | bool | str | ints | mapping | any
    default: Any = _REQUIRED
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # what ``check`` enforces, e.g. "must be >= 1"
    choices: tuple[str, ...] | None = None
    nullable: bool = False


def _ge(lo: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= lo), f"must be >= {lo}"


def _gt(lo: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > lo), f"must be > {lo}"


def _unit(lo_open: bool = True, hi_open: bool = True) -> tuple[Callable[[Any], bool], str]:
    lo, hi = ("(" if lo_open else "["), (")" if hi_open else "]")
    return ((lambda v: (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)),
            f"must lie in {lo}0, 1{hi}")


def _f(kind: str, default: Any = _REQUIRED, rule: tuple[Callable[[Any], bool], str] | None = None,
       choices: tuple[str, ...] | None = None, nullable: bool = False) -> Field:
    check, text = rule if rule else (None, "")
    return Field(kind, default, check, text, choices, nullable)


TOP_FIELDS: dict[str, Field] = {
    "name": _f("str", None, nullable=True),  # None: the sweep file's stem
    "metric": _f("str", "val_acc", choices=tuple(METRICS)),
    "mode": _f("str", None, choices=("max", "min"), nullable=True),  # None: what the metric wants
    "data": _f("mapping"),
    "model": _f("mapping", {}),
    "train": _f("mapping", {}),
    "search": _f("mapping", {}),
    "scheduler": _f("mapping", {}),
    "resources": _f("mapping", {}),
    "max_failures": _f("int", 2, _ge(0)),  # restarts of a failed trial from its last checkpoint
}

DATA_FIELDS: dict[str, Field] = {
    "name": _f("str"),
    "val_fraction": _f("float", 0.2, _unit()),
    "split_seed": _f("int", 0, _ge(0)),
}

DATA_SOURCE_FIELDS: dict[str, dict[str, Field]] = {
    "digits": {},
    "mnist1d": {
        "seed": _f("int", SOURCE_OPTIONS["mnist1d"]["seed"], _ge(0)),
        "num_samples": _f("int", SOURCE_OPTIONS["mnist1d"]["num_samples"], _ge(100)),
        "iid_noise_scale": _f("float", SOURCE_OPTIONS["mnist1d"]["iid_noise_scale"], _ge(0)),
        "corr_noise_scale": _f("float", SOURCE_OPTIONS["mnist1d"]["corr_noise_scale"], _ge(0)),
    },
    "synthetic": {
        "n_samples": _f("int", SOURCE_OPTIONS["synthetic"]["n_samples"], _ge(20)),
        "flip_y": _f("float", SOURCE_OPTIONS["synthetic"]["flip_y"], _unit(lo_open=False)),
        "n_features": _f("int", SOURCE_OPTIONS["synthetic"]["n_features"], _ge(2)),
        "n_classes": _f("int", SOURCE_OPTIONS["synthetic"]["n_classes"], _ge(2)),
        "seed": _f("int", SOURCE_OPTIONS["synthetic"]["seed"], _ge(0)),
    },
    "npz": {"path": _f("str")},
    "callable": {"kwargs": _f("mapping", {})},
}

MODEL_FIELDS: dict[str, Field] = {
    "name": _f("str", "mlp"),
    "hidden": _f("ints", [100, 100]),
    "batch_norm": _f("bool", True),
    "bn_momentum": _f("float", 0.1, _unit(hi_open=False)),
}
MODEL_EXTRA_FIELDS: dict[str, dict[str, Field]] = {
    "mlp": {},
    "cnn": {"kernel_size": _f("int", None, ((lambda v: v >= 1 and v % 2 == 1), "must be an odd integer >= 1"),
                              nullable=True)},
    "callable": {"kwargs": _f("mapping", {})},
}

TRAIN_FIELDS: dict[str, Field] = {
    "epochs": _f("int", 20, _ge(1)),
    "batch_size": _f("int", 128, _ge(2)),
    "optimizer": _f("str", "sgd", choices=OPTIMIZERS),
    "lr": _f("float", 0.01, _gt(0)),
    "lr_schedule": _f("str", "constant", choices=LR_SCHEDULES),
    "momentum": _f("float", 0.9, _unit(lo_open=False)),
    "beta1": _f("float", 0.9, _unit(lo_open=False)),
    "beta2": _f("float", 0.999, _unit(lo_open=False)),
    "weight_decay": _f("float", 0.0, _ge(0)),
    "seed": _f("int", 0, _ge(0)),
    "amp": _f("bool", False),
}

SEARCH_FIELDS: dict[str, Field] = {
    "method": _f("str", "random", choices=METHODS),
    "num_samples": _f("int", None, _ge(1), nullable=True),  # None: 32, or 1 pass over the grid
    "seed": _f("int", 0, _ge(0)),
    "max_concurrent": _f("int", 0, _ge(0)),  # 0: as many trials at once as resources allow
    "parameters": _f("mapping", {}),
    "refine": _f("mapping", None, nullable=True),
}

REFINE_FIELDS: dict[str, Field] = {
    "rounds": _f("int", 1, _ge(0)),
    "top_k": _f("int", 5, _ge(1)),
    "num_samples": _f("int", 16, _ge(1)),
    "margin": _f("float", 0.1, _ge(0)),
}

PARAMETER_KEYS = ("distribution", "min", "max", "values", "grid_points")

SCHEDULER_FIELDS: dict[str, Field] = {
    "name": _f("str", "asha", choices=SCHEDULERS),
    "grace_period": _f("int", 1, _ge(1)),
    "reduction_factor": _f("float", 3, _ge(2)),
    "brackets": _f("int", 1, _ge(1)),
}

RESOURCES_FIELDS: dict[str, Field] = {
    "cpu": _f("float", 1, _gt(0)),
    "gpu": _f("float", 0, ((lambda v: v >= 0 and (v <= 1 or float(v).is_integer())),
                           "must be >= 0, and a whole number when above 1")),
}


@dataclass(frozen=True)
class RefineSpec:
    rounds: int = 1  # refine rounds after the first round
    top_k: int = 5  # configurations whose span sets the next round's ranges
    num_samples: int = 16  # trials per refine round
    margin: float = 0.1  # the span is widened by this fraction of itself on each side


@dataclass(frozen=True)
class SearchSpec:
    method: str = "random"
    num_samples: int = 32
    seed: int = 0
    max_concurrent: int = 0
    parameters: tuple[Parameter, ...] = ()
    refine: RefineSpec | None = None


@dataclass(frozen=True)
class SchedulerSpec:
    name: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 3
    brackets: int = 1


@dataclass(frozen=True)
class ResourcesSpec:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Sweep:
    """A validated sweep with every default applied."""

    name: str
    metric: str
    mode: str
    data: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    search: SearchSpec
    scheduler: SchedulerSpec
    resources: ResourcesSpec
    max_failures: int = 2
    source: str = "<dict>"  # the file it came from
    sha256: str = ""  # of the file's bytes
    extra: dict[str, Any] = field(default_factory=dict)

    def base_config(self) -> dict[str, Any]:
        """The trial configuration before any searched parameter is applied."""
        return {"data": copy.deepcopy(self.data), "model": copy.deepcopy(self.model),
                "train": copy.deepcopy(self.train)}

    def to_dict(self) -> dict[str, Any]:
        """The sweep-file form, every default written out; :func:`from_dict` reads it back."""
        search: dict[str, Any] = {
            "method": self.search.method, "num_samples": self.search.num_samples, "seed": self.search.seed,
            "max_concurrent": self.search.max_concurrent,
            "parameters": {p.path: p.to_dict() for p in self.search.parameters},
        }
        if self.search.refine is not None:
            r = self.search.refine
            search["refine"] = {"rounds": r.rounds, "top_k": r.top_k, "num_samples": r.num_samples, "margin": r.margin}
        return {
            "name": self.name, "metric": self.metric, "mode": self.mode, **self.base_config(),
            "search": search,
            "scheduler": {"name": self.scheduler.name, "grace_period": self.scheduler.grace_period,
                          "reduction_factor": self.scheduler.reduction_factor, "brackets": self.scheduler.brackets},
            "resources": {"cpu": self.resources.cpu, "gpu": self.resources.gpu},
            "max_failures": self.max_failures,
        }


def load_sweep(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Sweep:
    """Read, validate and resolve a sweep file.

    Args:
        path: the YAML file.
        overrides: top-level or dotted keys set after reading (e.g. ``{"name": "x",
            "search.num_samples": 4}``), validated like the file's own keys.

    Raises:
        InputError: every problem found, one line each.
    """
    source = str(path)
    p = Path(path)
    try:
        raw_bytes = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except OSError as e:
        raise InputError(f"{source}: cannot read ({e.strerror})") from None
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        raise InputError(f"{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{source}: invalid YAML: {e}") from None
    if raw is None:
        raise InputError(f"{source}: the file is empty")
    if not isinstance(raw, dict):
        raise InputError(problem(source, "", type(raw).__name__, "the top level must be a mapping of keys"))
    if _is_export(raw):  # an export file: run its config (the best configuration, nothing searched)
        if not isinstance(raw["config"], dict):
            raise InputError(problem(source, "config", type(raw["config"]).__name__, "must be a mapping"))
        raw = raw["config"]
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    if raw.get("name") is None:
        raw["name"] = p.stem
    return from_dict(raw, source=source, sha256=hashlib.sha256(raw_bytes).hexdigest(), base_dir=p.parent)


def _is_export(raw: Mapping[str, Any]) -> bool:
    return all(k in raw for k in ("config", "params", "score", "metric"))


def from_dict(raw: Mapping[str, Any], source: str = "<dict>", sha256: str = "",
              base_dir: str | os.PathLike[str] | None = None) -> Sweep:
    """Validate and resolve a sweep already parsed into a mapping (see :func:`load_sweep`)."""
    return _Validator(source, Path(base_dir) if base_dir is not None else None).sweep(raw, sha256)


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw[a][b] = value`` for the key ``"a.b"``, creating mappings on the way."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class _Validator:
    """Collects every problem of one sweep, then builds the spec if there are none."""

    def __init__(self, source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: list[str] = []

    def add(self, key: str, value: Any, rule: str) -> None:
        self.problems.append(problem(self.source, key, value, rule))

    # -- values -------------------------------------------------------------------------

    def value(self, key: str, f: Field, v: Any) -> tuple[bool, Any]:
        """Check ``v`` against ``f``; returns (ok, the value converted to its type)."""
        if v is None:
            if f.nullable:
                return True, None
            self.add(key, v, f"must be set ({_kind_text(f)})")
            return False, v
        ok, v = _convert(f.kind, v)
        if not ok:
            self.add(key, v, f"must be {_kind_text(f)}")
            return False, v
        if f.choices is not None and v not in f.choices:
            self.add(key, v, f"is not one of {', '.join(f.choices)}")
            return False, v
        if f.check is not None and not f.check(v):
            self.add(key, v, f.rule)
            return False, v
        return True, v

    def section(self, prefix: str, raw: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
        """Validate one mapping against its fields; unknown keys are problems."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.add(prefix, type(raw).__name__, "must be a mapping of keys")
            return {k: f.default for k, f in fields.items() if f.default is not _REQUIRED}
        out: dict[str, Any] = {}
        for key, v in raw.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            if key not in fields:
                self.unknown(full, str(key), fields)
                continue
            ok, v = self.value(full, fields[key], v)
            if ok:
                out[key] = v
        for key, f in fields.items():
            if key in raw:
                continue
            if f.default is _REQUIRED:
                self.add(f"{prefix}.{key}" if prefix else key, NO_VALUE, f"is required ({_kind_text(f)})")
            else:
                out[key] = copy.deepcopy(f.default)
        return out

    def unknown(self, full: str, key: str, fields: Mapping[str, Field] | tuple[str, ...]) -> None:
        known = list(fields)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        self.add(full, NO_VALUE, f"unknown key ({hint}known: {', '.join(known)})")

    # -- sections -----------------------------------------------------------------------

    def sweep(self, raw: Mapping[str, Any], sha256: str) -> Sweep:
        top = self.section("", dict(raw), TOP_FIELDS)
        metric = top.get("metric", "val_acc")
        mode = top.get("mode") or METRICS.get(metric, "max")
        if top.get("mode") and metric in METRICS and mode != METRICS[metric]:
            self.add("mode", mode, f"contradicts metric {metric} (better is {METRICS[metric]})")
        data = self.data(top["data"]) if "data" in top else {}
        model = self.model(top.get("model"))
        train = self.section("train", top.get("train"), TRAIN_FIELDS)
        scheduler = self.scheduler(top.get("scheduler"), train)
        search = self.search(top.get("search"), model, train, scheduler)
        resources = ResourcesSpec(**self.section("resources", top.get("resources"), RESOURCES_FIELDS))
        if self.problems:
            raise InputError(self.problems)
        return Sweep(name=str(top["name"]) if top.get("name") else "sweep", metric=metric, mode=mode,
                     data=data, model=model, train=train, search=search, scheduler=scheduler,
                     resources=resources, max_failures=top["max_failures"], source=self.source, sha256=sha256)

    def data(self, raw: Any) -> dict[str, Any]:
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name not in SOURCES and ":" not in name:
            close = difflib.get_close_matches(name, SOURCES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.add("data.name", name, f"is not a data source ({hint}one of {', '.join(SOURCES)} "
                                        "or 'package.module:function')")
            name = None
        extra = DATA_SOURCE_FIELDS["callable" if isinstance(name, str) and ":" in name else name] if name else {}
        if name is None and isinstance(raw, dict):  # unknown source: check only the common keys
            raw = {k: v for k, v in raw.items() if k in DATA_FIELDS}
        out = self.section("data", raw, {**DATA_FIELDS, **extra})
        if out.get("name") == "npz" and isinstance(out.get("path"), str):
            out["path"] = self.existing_file("data.path", out["path"])
        if isinstance(out.get("name"), str) and ":" in out["name"]:
            self.importable("data.name", out["name"])
        return out

    def existing_file(self, key: str, path: str) -> str:
        candidates = [Path(path)] if Path(path).is_absolute() else [Path.cwd() / path]
        if self.base_dir is not None and not Path(path).is_absolute():
            candidates.append(self.base_dir / path)
        for c in candidates:
            if c.is_file():
                return str(c.resolve())
        where = " or ".join(str(c.parent) for c in candidates)
        self.add(key, path, f"no such file (looked in {where})")
        return path

    def importable(self, key: str, ref: str) -> None:
        from models.data import resolve_callable

        module, _, attr = ref.partition(":")
        if not module or not attr:
            self.add(key, ref, "must be 'package.module:function'")
            return
        try:
            resolve_callable(ref)
        except ImportError as e:
            self.add(key, ref, f"cannot be imported: {str(e).split(': ', 1)[-1]}")

    def model(self, raw: Any) -> dict[str, Any]:
        name = raw.get("name", "mlp") if isinstance(raw, dict) else "mlp"
        kind = "callable" if isinstance(name, str) and ":" in name else name
        if isinstance(name, str) and kind not in MODEL_EXTRA_FIELDS:
            close = difflib.get_close_matches(name, MODELS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.add("model.name", name, f"is not a model ({hint}one of {', '.join(MODELS)} "
                                         "or 'package.module:function')")
            raw = {k: v for k, v in raw.items() if k != "name"}
        extra = MODEL_EXTRA_FIELDS.get(kind, {}) if isinstance(kind, str) else {}
        out = self.section("model", raw, {**MODEL_FIELDS, **extra})
        hidden = out.get("hidden")
        if isinstance(hidden, list) and not hidden and kind in ("mlp", "cnn"):
            self.add("model.hidden", hidden, "must list at least one width")
        if kind == "callable":
            self.importable("model.name", name)
        return out

    def scheduler(self, raw: Any, train: dict[str, Any]) -> SchedulerSpec:
        out = self.section("scheduler", raw, SCHEDULER_FIELDS)
        epochs = train.get("epochs")
        if out.get("name") == "asha" and isinstance(epochs, int) and out.get("grace_period", 1) > epochs:
            self.add("scheduler.grace_period", out["grace_period"], f"must be <= train.epochs ({epochs})")
        fields = {k: out[k] for k in ("name", "grace_period", "reduction_factor", "brackets") if k in out}
        return SchedulerSpec(**fields)

    def search(self, raw: Any, model: dict[str, Any], train: dict[str, Any], scheduler: SchedulerSpec) -> SearchSpec:
        out = self.section("search", raw, SEARCH_FIELDS)
        method = out.get("method", "random")
        params = []
        raw_params = out.get("parameters") or {}
        for path, spec in raw_params.items():
            p = self.parameter(str(path), spec, method, model, train, scheduler)
            if p is not None:
                params.append(p)
        refine = None
        if out.get("refine") is not None:
            refine = RefineSpec(**self.section("search.refine", out["refine"], REFINE_FIELDS))
            if method == "grid":
                self.add("search.refine", NO_VALUE, "needs method random or tpe (a grid has no region to zoom in on)")
        num_samples = out.get("num_samples") or (1 if method == "grid" else 32)
        return SearchSpec(method=method, num_samples=num_samples, seed=out.get("seed", 0),
                          max_concurrent=out.get("max_concurrent", 0), parameters=tuple(params), refine=refine)

    def parameter(self, path: str, spec: Any, method: str, model: dict[str, Any], train: dict[str, Any],
                  scheduler: SchedulerSpec) -> Parameter | None:
        key = f"search.parameters.{path}"
        target = self.target_field(key, path, model, scheduler)
        if not isinstance(spec, dict):
            self.add(key, spec, "must be a mapping: {distribution, min, max} or {values: [...]}")
            return None
        for k in spec:
            if k not in PARAMETER_KEYS:
                self.unknown(f"{key}.{k}", str(k), PARAMETER_KEYS)
        grid_points = spec.get("grid_points")
        if grid_points is not None:
            ok, grid_points = self.value(f"{key}.grid_points", _f("int", rule=_ge(2)), grid_points)
            if not ok:
                return None
            if method != "grid":
                self.add(f"{key}.grid_points", grid_points, "is only used by search.method grid")
        if "values" in spec:
            return self.categorical(key, path, spec, target)
        dist = spec.get("distribution")
        if dist is None:
            self.add(key, NO_VALUE, "needs a distribution (with min and max) or values")
            return None
        if dist not in DISTRIBUTIONS:
            close = difflib.get_close_matches(str(dist), DISTRIBUTIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.add(f"{key}.distribution", dist, f"is not a distribution ({hint}one of {', '.join(DISTRIBUTIONS)})")
            return None
        bounds = {}
        for b in ("min", "max"):
            if b not in spec:
                self.add(f"{key}.{b}", NO_VALUE, f"is required for {dist}")
                continue
            ok, v = self.value(f"{key}.{b}", _f("float"), spec[b])
            if ok:
                bounds[b] = v
        if len(bounds) < 2:
            return None
        broken = bound_rules(dist, bounds["min"], bounds["max"])
        for b, v, rule in broken:
            self.add(f"{key}.{b}", v, rule)
        if broken:
            return None
        if target is not None:
            if target.kind == "int" and dist not in INT_DISTRIBUTIONS:
                self.add(f"{key}.distribution", dist,
                         f"draws floats but {path} is an integer: use int_uniform, int_log_uniform or values")
                return None
            if target.kind not in ("int", "float", "any"):
                self.add(f"{key}.distribution", dist, f"draws numbers but {path} is {_kind_text(target)}: use values")
                return None
            for b in ("min", "max"):
                self.value(f"{key}.{b}", target, int(bounds[b]) if target.kind == "int" else bounds[b])
        if method == "grid" and grid_points is None:
            self.add(key, NO_VALUE, "needs grid_points (or values) for search.method grid")
            return None
        if dist in INT_DISTRIBUTIONS:
            bounds = {b: int(v) for b, v in bounds.items()}
        return Parameter(path, dist, bounds["min"], bounds["max"], None, grid_points)

    def categorical(self, key: str, path: str, spec: dict[str, Any], target: Field | None) -> Parameter | None:
        values = spec["values"]
        if "distribution" in spec or "min" in spec or "max" in spec:
            self.add(key, NO_VALUE, "takes values or a distribution with min and max, not both")
            return None
        if not isinstance(values, list) or not values:
            self.add(f"{key}.values", values, "must be a non-empty list")
            return None
        converted, ok_all = [], True
        for i, v in enumerate(values):
            if target is None:
                converted.append(v)
                continue
            ok, cv = self.value(f"{key}.values[{i}]", target, v)
            ok_all &= ok
            converted.append(cv)
        if not ok_all:
            return None
        return Parameter(path, None, None, None, tuple(converted), None)

    def target_field(self, key: str, path: str, model: dict[str, Any], scheduler: SchedulerSpec) -> Field | None:
        """The field a parameter path points at; a problem if it points nowhere."""
        section, _, rest = path.partition(".")
        if section == "data":
            self.add(key, NO_VALUE, "data cannot be searched: the data set is loaded once and shared by every trial")
            return None
        if section not in ("model", "train") or not rest:
            self.add(key, NO_VALUE, "is not a path into model or train (e.g. train.lr, model.hidden)")
            return None
        if section == "train":
            fields: Mapping[str, Field] = TRAIN_FIELDS
        else:
            name = model.get("name", "mlp")
            kind = "callable" if isinstance(name, str) and ":" in name else name
            fields = {**MODEL_FIELDS, **MODEL_EXTRA_FIELDS.get(kind, {})}
        head, _, tail = rest.partition(".")
        if section == "model" and head == "kwargs" and "kwargs" in fields and tail:
            return Field("any", None)
        if head not in fields or tail:
            close = difflib.get_close_matches(head, list(fields), n=1, cutoff=0.5)
            hint = f" (did you mean {section}.{close[0]}?)" if close else ""
            self.add(key, NO_VALUE, f"is not a key of {section}{hint}")
            return None
        if section == "train" and head == "epochs" and scheduler.name == "asha":
            self.add(key, NO_VALUE, "train.epochs is ASHA's max_t and cannot be searched with scheduler asha")
            return None
        return fields[head]


def _convert(kind: str, v: Any) -> tuple[bool, Any]:
    if kind == "any":
        return True, v
    if kind == "bool":
        return isinstance(v, bool), v
    if kind == "str":
        return isinstance(v, str), v
    if kind == "mapping":
        return isinstance(v, dict), v
    if kind == "int":
        if isinstance(v, bool):
            return False, v
        if isinstance(v, float) and v.is_integer():
            return True, int(v)
        return isinstance(v, int), v
    if kind == "float":
        if isinstance(v, bool):
            return False, v
        if isinstance(v, (int, float)):
            return True, float(v)
        if isinstance(v, str) and _FLOAT_TEXT.match(v.strip()):
            return True, float(v)  # PyYAML reads 1e-4 (no dot) as a string
        return False, v
    if kind == "ints":
        ok = isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
        return ok, v
    raise AssertionError(f"unknown field kind {kind}")


def _kind_text(f: Field) -> str:
    texts = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
             "ints": "a list of positive integers", "mapping": "a mapping", "any": "a value"}
    return texts[f.kind]
