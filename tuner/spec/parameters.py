"""Checking ``search.parameters``: each path points at a key of the config, each range fits its
distribution and the key's own rule, each list of values holds values the key accepts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuner.errors import NO_VALUE, closest, did_you_mean
from tuner.space import DISTRIBUTIONS, INT_DISTRIBUTIONS, MAX_BOUND, Parameter, bound_rules, value_key
from tuner.spec.schema import (
    MAX_TRIALS,
    MODEL_EXTRA_FIELDS,
    MODEL_FIELDS,
    PARAMETER_KEYS,
    TRAIN_FIELDS,
    Field,
    f,
    kind_text,
    rng,
)

if TYPE_CHECKING:
    from tuner.spec.validate import Validator


class ParameterRules:
    """The rules of one sweep's parameters; problems go to the sweep's :class:`Validator`."""

    def __init__(self, v: Validator) -> None:
        self.v = v

    def parameter(
        self, path: str, spec: Any, method: str, config: dict[str, Any], builtin: bool, scheduler: dict[str, Any]
    ) -> Parameter | None:
        key = f"search.parameters.{path}"
        target = self.target_field(key, path, config, builtin, scheduler)
        if not isinstance(spec, dict):
            self.v.add(key, spec, "must be a mapping: {distribution, min, max} or {values: [...]}")
            return None
        for k in spec:
            if k not in PARAMETER_KEYS:
                self.v.unknown(f"{key}.{k}", str(k), list(PARAMETER_KEYS))
        grid_points = spec.get("grid_points")
        if grid_points is not None:
            ok, grid_points = self.v.value(f"{key}.grid_points", f("int", rule=rng(2, 10_000)), grid_points)
            if not ok:
                return None
            if method != "grid":
                self.v.add(f"{key}.grid_points", grid_points, "is only used by search.method grid")
        if "values" in spec:
            return self.categorical(key, path, spec, target, config if builtin and path == "model.name" else None)
        dist = spec.get("distribution")
        if dist is None:
            self.v.add(key, NO_VALUE, "needs a distribution (with min and max) or values")
            return None
        if dist not in DISTRIBUTIONS:
            self.v.add(
                f"{key}.distribution",
                dist,
                f"is not a distribution ({did_you_mean(str(dist), DISTRIBUTIONS)}one of {', '.join(DISTRIBUTIONS)})",
            )
            return None
        bounds = {}
        for b in ("min", "max"):
            if b not in spec:
                self.v.add(f"{key}.{b}", NO_VALUE, f"is required for {dist}")
                continue
            ok, v = self.v.value(f"{key}.{b}", f("float", rule=rng(-MAX_BOUND, MAX_BOUND)), spec[b])
            if ok:
                bounds[b] = v
        if len(bounds) < 2:
            return None
        broken = bound_rules(dist, bounds["min"], bounds["max"])
        for b, v, rule in broken:
            self.v.add(f"{key}.{b}", v, rule)
        if broken:
            return None
        if dist in INT_DISTRIBUTIONS and max(abs(bounds["min"]), abs(bounds["max"])) > 2**53:
            self.v.add(f"{key}.max", bounds["max"], f"must lie within ±2^53 for {dist}")
            return None
        if target is not None:
            if target.kind == "int" and dist not in INT_DISTRIBUTIONS:
                self.v.add(
                    f"{key}.distribution",
                    dist,
                    f"draws floats but {path} is an integer: use int_uniform, int_log_uniform or values",
                )
                return None
            if target.kind not in ("int", "float", "any"):
                self.v.add(f"{key}.distribution", dist, f"draws numbers but {path} is {kind_text(target)}: use values")
                return None
            for b in ("min", "max"):
                self.v.value(f"{key}.{b}", target, int(bounds[b]) if target.kind == "int" else bounds[b])
        if method == "grid" and grid_points is None:
            self.v.add(key, NO_VALUE, "needs grid_points (or values) for search.method grid")
            return None
        if dist in INT_DISTRIBUTIONS:
            bounds = {b: int(v) for b, v in bounds.items()}
        return Parameter(path, dist, bounds["min"], bounds["max"], None, grid_points)

    def categorical(
        self, key: str, path: str, spec: dict[str, Any], target: Field | None, model: dict[str, Any] | None = None
    ) -> Parameter | None:
        """A ``values`` parameter: each value plain JSON data the key accepts, none twice; with
        ``model`` (the built-in trainer's config, for ``model.name``) each a model name as the
        top-level one must be."""
        values = spec["values"]
        if "distribution" in spec or "min" in spec or "max" in spec:
            self.v.add(key, NO_VALUE, "takes values or a distribution with min and max, not both")
            return None
        if not isinstance(values, list) or not values or len(values) > 10_000:
            self.v.add(f"{key}.values", values, "must be a non-empty list (at most 10000 values)")
            return None
        converted, ok_all, seen = [], True, {}
        for i, v in enumerate(values):
            at = f"{key}.values[{i}]"
            if v is None and not (target is not None and target.nullable):
                self.v.add(at, NO_VALUE, "null is not a value a parameter can take (leave it out of values)")
                ok_all = False
                continue
            rule = json_problem(v)
            if rule is not None:
                self.v.add(at, v, rule)
                ok_all = False
                continue
            ok, cv = self.v.value(at, target, v) if target is not None else (True, v)
            if ok and model is not None:
                ok = self.v.model_name(at, cv, model["model"].get("kwargs"))
            # offline: a run's own sweep.yaml, read as it ran (an older tuner allowed repeats)
            first = seen.setdefault(value_key(cv), i) if ok and not self.v.offline else i
            if first != i:
                self.v.add(at, cv, f"repeats values[{first}]: each value must be listed once")
                ok = False
            ok_all &= ok
            converted.append(cv)
        return Parameter(path, None, None, None, tuple(converted), None) if ok_all else None

    def grid_fits(self, params: list[Any], repeats: int) -> None:
        """A grid's trials (its points times ``num_samples``) are as many as a search may run."""
        size = 1
        for p in params:  # counted without listing a grid: 10,000 points a parameter are allowed
            size *= len(p.values) if p.values is not None else (p.grid_points or 1)
            if size * repeats > MAX_TRIALS:
                self.v.add(
                    "search.parameters",
                    NO_VALUE,
                    f"make a grid of more than {MAX_TRIALS:,} trials (points of each parameter multiplied, "
                    "times num_samples): fewer points, or method random",
                )
                return

    def target_field(
        self, key: str, path: str, config: dict[str, Any], builtin: bool, scheduler: dict[str, Any]
    ) -> Field | None:
        """The field a parameter path points at; a problem if it points nowhere."""
        if path.split(".", 1)[0] == "data":
            self.v.add(key, NO_VALUE, "data cannot be searched: the data set is loaded once and shared by every trial")
            return None
        if not builtin:
            return self.config_field(key, path, config, scheduler)
        section, _, rest = path.partition(".")
        if section not in ("model", "train") or not rest:
            self.v.add(key, NO_VALUE, "is not a path into model or train (e.g. train.lr, model.hidden)")
            return None
        if section == "train":
            fields: Mapping[str, Field] = TRAIN_FIELDS
        else:
            name = config["model"].get("name", "mlp")
            kind = "callable" if isinstance(name, str) and ":" in name else name
            fields = {**MODEL_FIELDS, **MODEL_EXTRA_FIELDS.get(kind, {})}
        head, _, tail = rest.partition(".")
        if section == "model" and head == "kwargs" and "kwargs" in fields and tail:
            return Field("any", None)
        if head not in fields or tail:
            close = closest(head, list(fields), cutoff=0.5)
            hint = f" (did you mean {section}.{close}?)" if close else ""
            self.v.add(key, NO_VALUE, f"is not a key of {section}{hint}")
            return None
        if section == "train" and head == "task":
            self.v.add(
                key,
                NO_VALUE,
                "train.task cannot be searched: the task follows the data and the metric (set it once in train)",
            )
            return None
        if section == "train" and head == "epochs" and scheduler.get("name") == "asha":
            self.v.add(key, NO_VALUE, "train.epochs is ASHA's max_t and cannot be searched with scheduler asha")
            return None
        return fields[head]

    def config_field(self, key: str, path: str, config: dict[str, Any], scheduler: dict[str, Any]) -> Field | None:
        """A path into a function's ``config``: it must name a key there; its default's type
        is the parameter's type."""
        node: Any = config
        parts = path.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = list(node) if isinstance(node, dict) else []
                where = ".".join(parts[:i]) or "config"
                hint = did_you_mean(part, known, cutoff=0.5)
                self.v.add(
                    key,
                    NO_VALUE,
                    f"is not a key of {'config.' + where if i else 'config'} "
                    f"({hint}known: {', '.join(map(str, known[:12])) or 'none'})",
                )
                return None
            node = node[part]
        if isinstance(node, bool):
            return Field("bool")
        if isinstance(node, int):
            return Field("any")  # a function may well take a float where its default is an int
        if isinstance(node, float):
            return Field("float")
        if isinstance(node, str):
            return Field("str")
        return Field("any")


def json_problem(value: Any) -> str | None:
    """Why ``value`` is not plain JSON data (a string, an integer, a finite number, true or
    false, null, and lists or string-keyed mappings of those), or None when it is. A searched
    value and a config default go into params.json, the journal and the export: NaN, a date,
    bytes or a set would be accepted here and break the run."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or isinstance(v, (str, bool, int)):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                return "must be a finite number (NaN and infinity are not JSON data)"
            continue
        if isinstance(v, list):
            stack.extend(v)
            continue
        if isinstance(v, dict):
            bad = next((k for k in v if not isinstance(k, str)), None)
            if bad is not None:
                return f"has the key {bad!r}: mapping keys must be strings (JSON data)"
            stack.extend(v.values())
            continue
        return (
            f"is not plain JSON data (it holds a {type(v).__name__}): use strings, finite numbers, true/false, "
            "null, or lists and mappings of those"
        )
    return None


def searched_values(raw: Any, path: str) -> list[Any]:
    """The ``values`` a raw (unchecked) sweep lists for the parameter ``path`` (none when it
    has no such list)."""
    search = raw.get("search") if isinstance(raw, Mapping) else None
    params = search.get("parameters") if isinstance(search, dict) else None
    spec = params.get(path) if isinstance(params, dict) else None
    values = spec.get("values") if isinstance(spec, dict) else None
    return values if isinstance(values, list) else []


def json_leaves(key: str, value: Any) -> list[tuple[str, Any, str]]:
    """``(key path, value, rule)`` for each part of ``value`` (a config's defaults) that is not
    plain JSON data (see :func:`json_problem`), named down its mappings."""
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return [leaf for k, v in value.items() for leaf in json_leaves(f"{key}.{k}", v)]
    rule = json_problem(value)
    return [(key, value, rule)] if rule is not None else []
