"""Checking a sweep against its schema: every problem at once, one line each.

Each problem names the file, the key path, the value and the rule, with a "did you mean"
for a misspelt key or name. The validator returns plain, fully resolved sections; the typed
:class:`tuner.spec.Sweep` is built from them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner import usercode
from tuner.errors import NO_VALUE, did_you_mean, problem
from tuner.files import unreachable
from tuner.models.data import SOURCE_TASKS, SOURCES
from tuner.records import BUILTIN_METRICS
from tuner.spec.functions import function_problem, model_problem
from tuner.spec.parameters import ParameterRules, json_leaves, searched_values
from tuner.spec.schema import (
    DATA_FIELDS,
    DATA_SOURCE_FIELDS,
    MODEL_EXTRA_FIELDS,
    MODEL_FIELDS,
    MODELS,
    NAME_PATTERN,
    NAME_RULE,
    REFINE_FIELDS,
    REQUIRED,
    RESOURCES_FIELDS,
    SCHEDULER_FIELDS,
    SEARCH_FIELDS,
    TOP_FIELDS,
    TRAIN_FIELDS,
    Field,
    convert,
    kind_text,
)

CLASSIFICATION_METRICS = ("val_acc", "val_loss", "train_loss")
REGRESSION_METRICS = ("val_loss", "val_rmse", "val_mae", "val_r2", "train_loss")


class Validator:
    """Collects every problem of one sweep; :meth:`sweep` returns its resolved sections."""

    def __init__(self, source: str, base_dir: Path | None, offline: bool = False) -> None:
        self.source = source
        self.base_dir = base_dir
        self.offline = offline  # check forms only: import no code, look for no file
        self.no_imports = offline  # import no code (a module beside it hides one Python needs)
        self.problems: list[str] = []

    def add(self, key: str, value: Any, rule: str) -> None:
        self.problems.append(problem(self.source, key, value, rule))

    # -- values -------------------------------------------------------------------------

    def value(self, key: str, fld: Field, v: Any) -> tuple[bool, Any]:
        """Check ``v`` against ``fld``; returns (ok, the value converted to its type)."""
        if v is None:
            if fld.nullable:
                return True, None
            self.add(key, v, f"must be set ({kind_text(fld)})")
            return False, v
        ok, v = convert(fld.kind, v)
        if not ok:
            self.add(key, v, f"must be {kind_text(fld)}")
            return False, v
        if fld.kind == "name" and (not NAME_PATTERN.fullmatch(v) or v in (".", "..")):
            self.add(key, v, NAME_RULE)
            return False, v
        if fld.choices is not None and v not in fld.choices:
            self.add(key, v, f"is not one of {', '.join(fld.choices)}")
            return False, v
        if fld.check is not None and not fld.check(v):
            self.add(key, v, fld.rule)
            return False, v
        return True, v

    def section(self, prefix: str, raw: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
        """Validate one mapping against its fields; unknown keys are problems."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.add(prefix, type(raw).__name__, "must be a mapping of keys")
            return {k: copy.deepcopy(fd.default) for k, fd in fields.items() if fd.default is not REQUIRED}
        out: dict[str, Any] = {}
        for key, v in raw.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            if key not in fields:
                self.unknown(full, str(key), list(fields))
                continue
            ok, v = self.value(full, fields[key], v)
            if ok:
                out[key] = v
        for key, fld in fields.items():
            if key in raw:
                continue
            if fld.default is REQUIRED:
                self.add(f"{prefix}.{key}" if prefix else key, NO_VALUE, f"is required ({kind_text(fld)})")
            else:
                out[key] = copy.deepcopy(fld.default)
        return out

    def unknown(self, full: str, key: str, known: list[str]) -> None:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        self.add(full, NO_VALUE, f"unknown key ({did_you_mean(key, known)}known: {shown})")

    # -- the whole sweep ----------------------------------------------------------------

    def sweep(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Every section resolved (problems collected in :attr:`problems`)."""
        if not self.offline:
            self.shadowing(raw)
        top = self.section("", dict(raw), TOP_FIELDS)
        function = top.get("function")
        builtin = function is None
        if builtin:
            for key in ("config", "seed"):
                if raw.get(key) is not None:
                    hint = (
                        "; the built-in trainer takes model and train (train.seed)"
                        if key == "seed"
                        else "; the built-in trainer takes model and train"
                    )
                    self.add(key, NO_VALUE, f"is only used with function{hint}")
        else:
            for key in ("model", "train"):
                if raw.get(key) is not None:
                    self.add(
                        key,
                        NO_VALUE,
                        "and function exclude each other: a function takes its settings from "
                        "config (the built-in trainer's are model and train)",
                    )
            if isinstance(function, str):
                fn = self.callable("function", function)
                rule = function_problem(fn, function.partition(":")[2]) if fn is not None else None
                if rule is not None:
                    self.add("function", function, rule)
        metric = top.get("metric")
        data: dict[str, Any] | None = None
        if top.get("data") is not None or "data" in raw:
            data = self.data(top.get("data"))
        elif builtin:
            self.add("data", NO_VALUE, "is required (a mapping) for the built-in trainer")
        config: dict[str, Any] = {}
        if builtin:
            model = self.model(top.get("model"))
            train = self.section("train", top.get("train"), TRAIN_FIELDS)
            config = {"model": model, "train": train}
            source = data.get("name") if data else None
            task = train.get("task") or (SOURCE_TASKS.get(source) if isinstance(source, str) else None)
            if metric is None:
                metric = "val_rmse" if task == "regression" else "val_acc"
            self.builtin_metric(metric, task, None if train.get("task") else source)
        else:
            config = copy.deepcopy(top.get("config") or {})
            for key, value, rule in json_leaves("config", config):  # searchable, so plain JSON data
                self.add(key, value, rule)
            if metric is None:
                self.add("metric", NO_VALUE, "is required with function: the key your function reports to optimise")
        mode = top.get("mode")
        if metric in BUILTIN_METRICS:
            better = BUILTIN_METRICS[metric]
            if mode is not None and mode != better:
                self.add("mode", mode, f"contradicts metric {metric} (better is {better})")
            mode = mode or better
        elif mode is None and metric is not None:
            self.add("mode", NO_VALUE, f"is required for metric {metric!r}: max or min")
        scheduler = self.scheduler(top.get("scheduler"), config, builtin)
        search = self.search(top.get("search"), config, builtin, scheduler)
        resources = self.section("resources", top.get("resources"), RESOURCES_FIELDS)
        return {
            "name": top.get("name"),
            "metric": metric,
            "mode": mode or "max",
            "function": function,
            "config": config,
            "data": data,
            "search": search,
            "scheduler": scheduler,
            "resources": resources,
            "max_failures": top.get("max_failures", 2),
            "trial_timeout": top.get("trial_timeout"),
            "seed": config["train"].get("seed", 0) if builtin else top.get("seed", 0),
        }

    def builtin_metric(self, metric: Any, task: str | None, source: str | None = None) -> None:
        """``metric`` must be one the built-in trainer reports for ``task`` (when known: set by
        train.task, or by the built-in ``source`` whose targets fix it)."""
        known = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}.get(
            task or "", tuple(dict.fromkeys(CLASSIFICATION_METRICS + REGRESSION_METRICS))
        )
        if isinstance(metric, str) and metric not in known:
            what = f"the built-in trainer ({task}) reports" if task else "the built-in trainer reports"
            if task and source:
                what = f"the built-in trainer reports on {task} data ({source})"
            self.add(
                "metric",
                metric,
                f"is not a metric {what} ({did_you_mean(metric, known)}one of {', '.join(known)})",
            )

    def data(self, raw: Any) -> dict[str, Any]:
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name not in SOURCES and ":" not in name:
            self.add(
                "data.name",
                name,
                f"is not a data source ({did_you_mean(name, SOURCES)}one of "
                f"{', '.join(SOURCES)} or 'package.module:function')",
            )
            name = None
        extra = (
            DATA_SOURCE_FIELDS["callable" if isinstance(name, str) and ":" in name else name]
            if isinstance(name, str)
            else {}
        )
        if name is None and isinstance(raw, dict):  # unknown source: check only the common keys
            raw = {k: v for k, v in raw.items() if k in DATA_FIELDS}
        out = self.section("data", raw, {**DATA_FIELDS, **extra})
        if out.get("name") == "npz" and isinstance(out.get("path"), str):
            out["path"] = self.existing_file("data.path", out["path"])
        if isinstance(out.get("name"), str) and ":" in out["name"]:
            self.callable("data.name", out["name"])
        return out

    def existing_file(self, key: str, path: str) -> str:
        if self.offline:
            return path
        p = Path(path)
        candidates = [p] if p.is_absolute() else [Path.cwd() / p]
        if self.base_dir is not None and not p.is_absolute():
            candidates.append(self.base_dir / p)
        for c in candidates:
            try:
                if c.is_file():
                    return str(c.resolve())
            except OSError:
                continue
        for c in candidates:
            try:
                if c.exists():  # a folder, a pipe: there, but not a file to read
                    self.add(key, path, f"is {'a folder' if c.is_dir() else 'not a regular file'}, not a data file")
                    return path
            except OSError:
                continue
        for c in candidates:  # there, but the system will not reach it: a loop of links, no permission...
            why = unreachable(c)
            if why is not None:
                self.add(key, path, f"cannot read ({why})")
                return path
        where = " or ".join(str(c.parent) for c in candidates)
        self.add(key, path, f"no such file (looked in {where})")
        return path

    def callable(self, key: str, ref: str) -> Any:
        """``ref`` must name an importable function (beside the sweep file or in the current
        folder, or installed); returns it (None when it was not imported)."""
        try:
            if self.no_imports:
                usercode.check_ref(ref)
            else:
                return usercode.resolve(ref, self.base_dir)
        except ImportError as e:
            self.add(key, ref, str(e))
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as e:  # a module that calls sys.exit() while importing: a problem, not an exit
            self.add(key, ref, f"cannot be imported: importing it raised {type(e).__name__}: {str(e)[:100]}")
        return None

    def shadowing(self, raw: Mapping[str, Any]) -> None:
        """A module beside the user's code that Python would import instead of one of the
        standard library's, tuner's or its dependencies' (a ``json.py``): a problem each, and
        no code of the user's is imported (it may hang or fail on the hidden module)."""
        refs = []
        for ref in (
            raw.get("function"),
            *(raw.get(k, {}).get("name") for k in ("model", "data") if isinstance(raw.get(k), dict)),
            *searched_values(raw, "model.name"),
        ):
            if isinstance(ref, str) and ":" in ref:
                try:
                    usercode.check_ref(ref)
                except ImportError:
                    continue
                refs.append(ref)
        for path, module, kind in usercode.shadowing(refs, self.base_dir):
            self.add(
                str(path),
                NO_VALUE,
                f"shadows the {kind} module {module} (the folder comes first on sys.path, here and on "
                f"every Ray worker, so Python imports it instead): rename it",
            )
            self.no_imports = True

    def model(self, raw: Any) -> dict[str, Any]:
        name = raw.get("name", "mlp") if isinstance(raw, dict) else "mlp"
        kind = "callable" if isinstance(name, str) and ":" in name else name
        if isinstance(name, str) and kind not in MODEL_EXTRA_FIELDS:
            self.model_name("model.name", name)
            raw = {k: v for k, v in raw.items() if k != "name"}
        extra = MODEL_EXTRA_FIELDS.get(kind, {}) if isinstance(kind, str) else {}
        out = self.section("model", raw, {**MODEL_FIELDS, **extra})
        if kind == "callable":
            self.model_name("model.name", name, out.get("kwargs"))
            for key, value, rule in json_leaves("model.kwargs", out.get("kwargs") or {}):  # searchable
                self.add(key, value, rule)
        return out

    def model_name(self, key: str, name: Any, kwargs: Any = None) -> bool:
        """``name`` must be mlp, cnn or an importable ``package.module:function`` callable as
        ``fn(input_shape, num_outputs, **kwargs)``: the rule of ``model.name`` and of each of
        its searched values. False (the problem added) when it is not."""
        if not isinstance(name, str) or name in MODELS:
            return True
        if ":" not in name:
            self.add(
                key,
                name,
                f"is not a model ({did_you_mean(name, MODELS)}one of {', '.join(MODELS)} or 'package.module:function')",
            )
            return False
        before = len(self.problems)
        fn = self.callable(key, name)
        rule = model_problem(fn, name.partition(":")[2], kwargs) if fn is not None else None
        if rule is not None:
            self.add(key, name, rule)
        return len(self.problems) == before

    def scheduler(self, raw: Any, config: dict[str, Any], builtin: bool) -> dict[str, Any]:
        out = self.section("scheduler", raw, SCHEDULER_FIELDS)
        if builtin:
            epochs = config["train"].get("epochs")
            if out.get("max_t") is not None and isinstance(epochs, int) and out["max_t"] != epochs:
                self.add(
                    "scheduler.max_t",
                    out["max_t"],
                    f"must equal train.epochs ({epochs}) for the built-in trainer (or be left out)",
                )
            if isinstance(epochs, int):
                out["max_t"] = epochs
        elif out.get("name") == "asha" and out.get("max_t") is None:
            self.add(
                "scheduler.max_t",
                NO_VALUE,
                "is required for asha with function: the most reports (epochs) a trial makes",
            )
        max_t = out.get("max_t")
        if out.get("name") == "asha" and isinstance(max_t, int) and out.get("grace_period", 1) > max_t:
            what = "train.epochs" if builtin else "scheduler.max_t"
            self.add("scheduler.grace_period", out["grace_period"], f"must be <= {what} ({max_t})")
        return out

    def search(self, raw: Any, config: dict[str, Any], builtin: bool, scheduler: dict[str, Any]) -> dict[str, Any]:
        out = self.section("search", raw, SEARCH_FIELDS)
        method = out.get("method", "random")
        params = []
        raw_params = out.get("parameters") or {}
        if len(raw_params) > 1000:
            self.add("search.parameters", raw_params, "must hold at most 1000 parameters")
            raw_params = {}
        for path, spec in raw_params.items():
            p = ParameterRules(self).parameter(str(path), spec, method, config, builtin, scheduler)
            if p is not None:
                params.append(p)
        refine = None
        if out.get("refine") is not None:
            refine = self.section("search.refine", out["refine"], REFINE_FIELDS)
            if method == "grid":
                self.add("search.refine", NO_VALUE, "needs method random or tpe (a grid has no region to zoom in on)")
            elif (
                len(params) == len(raw_params)
                and refine.get("rounds")
                and all(p.values is not None and len(p.values) < 2 for p in params)
            ):  # its rounds would run one configuration again and again
                self.add("search.refine", NO_VALUE, "needs a searched parameter with more than one value to narrow")
        if method == "grid" and out.get("num_samples") not in (None, 1):  # its repeats: the same trials again
            self.add(
                "search.num_samples",
                out["num_samples"],
                "a grid runs each of its points once: leave num_samples out (tuner retest re-runs the best with "
                "fresh seeds)",
            )
        out["num_samples"] = out.get("num_samples") or (1 if method == "grid" else 32)
        if method == "grid" and params and len(params) == len(raw_params):
            ParameterRules(self).grid_fits(params, 1)
        out["parameters"] = params
        out["refine"] = refine
        return out
