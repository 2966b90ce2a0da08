"""The sweep file's schema: every key, its type, default and rule, written once.

The validator (:mod:`tuner.spec.validate`) checks a file against these tables, the typed
spec (:class:`tuner.spec.Sweep`) is built from what they return with every default applied,
and ``docs/sweep-file.md`` is generated from them (:func:`reference`; a test keeps the two
the same). Nothing else in the project states a sweep-file default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.models import LR_SCHEDULES, OPTIMIZERS
from tuner.models.data import SOURCE_OPTIONS, TASKS
from tuner.records import BUILTIN_METRICS

REQUIRED: Any = object()
BUILTIN_FUNCTION = "tuner.models.train:fit"  # the built-in BN trainer: a trial function like any other
METHODS = ("random", "grid", "tpe")
SCHEDULERS = ("asha", "none")
MODELS = ("mlp", "cnn")
MAX_SEED = 2**32 - 1
MAX_TRIALS = 1_000_000  # the most trials a round (a grid: its points) may run
# A run name becomes a folder of the storage: one path component of safe characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (one folder name)"


@dataclass(frozen=True)
class Field:
    """One key of a section: its type, default, rule and what it means."""

    kind: str  # int | float | bool | str | name | ints | mapping | list | any
    default: Any = REQUIRED
    check: Callable[[Any], bool] | None = None
    rule: str = ""  # what ``check`` enforces, e.g. "must be >= 1"
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    doc: str = ""


def rng(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False
) -> tuple[Callable[[Any], bool], str]:
    """A range rule: ``lo <= v <= hi`` (``<`` where open); either end may be None."""

    def check(v: Any) -> bool:
        return (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))

    if lo is not None and hi is not None:
        text = f"must lie in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"must be {'>' if lo_open else '>='} {_num(lo)}"
    else:
        text = f"must be {'<' if hi_open else '<='} {_num(hi)}"
    return check, text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def f(
    kind: str,
    default: Any = REQUIRED,
    rule: tuple[Callable[[Any], bool], str] | None = None,
    choices: tuple[str, ...] | None = None,
    nullable: bool = False,
    doc: str = "",
) -> Field:
    check, text = rule if rule else (None, "")
    return Field(kind, default, check, text, choices, nullable, doc)


def _odd(v: int) -> bool:
    return v >= 1 and v % 2 == 1 and v <= 99


TOP_FIELDS: dict[str, Field] = {
    "name": f(
        "name", None, nullable=True, doc="run name; results go under <storage>/<name> (default: the file's stem)"
    ),
    "metric": f(
        "str",
        None,
        nullable=True,
        doc="the reported key to optimise (built-in: "
        + ", ".join(k for k in BUILTIN_METRICS if k.startswith(("val", "train")))
        + "; default val_acc, val_rmse for regression: train.task, or data diabetes or regression)",
    ),
    "mode": f(
        "str",
        None,
        choices=("max", "min"),
        nullable=True,
        doc="max or min (default: what a built-in metric wants; required for any other metric)",
    ),
    "function": f(
        "str",
        None,
        nullable=True,
        doc="'package.module:function' trained by each trial (default: the built-in BN trainer)",
    ),
    "config": f("mapping", None, nullable=True, doc="free-form defaults handed to `function` (with function only)"),
    "seed": f("int", 0, rng(0, MAX_SEED), doc="run.seed of every search trial (with function; built-in: train.seed)"),
    "data": f("mapping", None, nullable=True, doc="the data set (required for the built-in trainer)"),
    "model": f("mapping", None, nullable=True, doc="the built-in trainer's network"),
    "train": f("mapping", None, nullable=True, doc="the built-in trainer's optimisation"),
    "search": f("mapping", {}, doc="what is searched and how"),
    "scheduler": f("mapping", {}, doc="early stopping"),
    "resources": f("mapping", {}, doc="per trial"),
    "max_failures": f("int", 2, rng(0, 100), doc="restarts of a failed trial from its last checkpoint"),
    "trial_timeout": f(
        "float",
        None,
        rng(1, 10_000_000),
        nullable=True,
        doc="seconds a trial may go without a report (the first included) before it is stopped as hung "
        "and fails (null: no limit)",
    ),
}

DATA_FIELDS: dict[str, Field] = {
    "name": f("str", doc="digits | mnist1d | synthetic | diabetes | regression | npz | 'package.module:function'"),
    "val_fraction": f("float", 0.2, rng(0, 1, True, True), doc="carved from the training split"),
    "split_seed": f("int", 0, rng(0, MAX_SEED), doc="the fixed seed of the train/val split"),
}

_N = rng(20, 10_000_000)
DATA_SOURCE_FIELDS: dict[str, dict[str, Field]] = {
    "digits": {},
    "diabetes": {},
    "mnist1d": {
        "seed": f(
            "int",
            SOURCE_OPTIONS["mnist1d"]["seed"],
            rng(0, MAX_SEED),
            doc="the generator's seed (42: the published set)",
        ),
        "n_samples": f(
            "int",
            SOURCE_OPTIONS["mnist1d"]["n_samples"],
            rng(100, 1_000_000),
            doc="samples generated (80% train, 20% test)",
        ),
        "iid_noise_scale": f("float", SOURCE_OPTIONS["mnist1d"]["iid_noise_scale"], rng(0, 100)),
        "corr_noise_scale": f("float", SOURCE_OPTIONS["mnist1d"]["corr_noise_scale"], rng(0, 100)),
    },
    "synthetic": {
        "n_samples": f("int", SOURCE_OPTIONS["synthetic"]["n_samples"], _N),
        "flip_y": f("float", SOURCE_OPTIONS["synthetic"]["flip_y"], rng(0, 1, False, True), doc="label noise"),
        "n_features": f("int", SOURCE_OPTIONS["synthetic"]["n_features"], rng(2, 100_000)),
        "n_classes": f("int", SOURCE_OPTIONS["synthetic"]["n_classes"], rng(2, 1000)),
        "seed": f("int", SOURCE_OPTIONS["synthetic"]["seed"], rng(0, MAX_SEED)),
    },
    "regression": {
        "n_samples": f("int", SOURCE_OPTIONS["regression"]["n_samples"], _N),
        "n_features": f("int", SOURCE_OPTIONS["regression"]["n_features"], rng(1, 100_000)),
        "n_targets": f("int", SOURCE_OPTIONS["regression"]["n_targets"], rng(1, 1000)),
        "noise": f("float", SOURCE_OPTIONS["regression"]["noise"], rng(0, 1e6)),
        "seed": f("int", SOURCE_OPTIONS["regression"]["seed"], rng(0, MAX_SEED)),
    },
    "npz": {
        "path": f(
            "str",
            doc="arrays x_train, y_train, x_test, y_test (relative to the current folder, else to the sweep file)",
        )
    },
    "callable": {"kwargs": f("mapping", {}, doc="passed to the data function")},
}

# Weights between a network's hidden layers, at most (0.8 GB as float32; a CNN's kernel
# multiplies it): [1000000, 1000000] (4 TB) is refused here, not failed by every trial.
MAX_HIDDEN_WEIGHTS = 200_000_000


def _hidden_fits(v: list[int]) -> bool:
    return sum(a * b for a, b in zip(v, v[1:])) <= MAX_HIDDEN_WEIGHTS


HIDDEN_RULE = (
    _hidden_fits,
    f"must hold at most {MAX_HIDDEN_WEIGHTS:,} weights between its layers (each width times the next, summed)",
)

MODEL_FIELDS: dict[str, Field] = {
    "name": f("str", "mlp", doc="mlp | cnn | 'package.module:function'"),
    "hidden": f("ints", [100, 100], HIDDEN_RULE, doc="mlp: widths; cnn: channels per conv block"),
    "batch_norm": f("bool", True, doc="normalise z[l] before the activation; false = the no-BN baseline"),
    "bn_momentum": f(
        "float",
        0.1,
        rng(0, 1, lo_open=True),
        doc="torch semantics: weight of the newest batch = 1 − β of the running average",
    ),
}
MODEL_EXTRA_FIELDS: dict[str, dict[str, Field]] = {
    "mlp": {},
    "cnn": {
        "kernel_size": f(
            "int",
            None,
            (_odd, "must be an odd integer in [1, 99]"),
            nullable=True,
            doc="default 5 for sequences, 3 for images",
        )
    },
    "callable": {"kwargs": f("mapping", {}, doc="passed to the model function")},
}

TRAIN_FIELDS: dict[str, Field] = {
    "epochs": f("int", 20, rng(1, 100_000), doc="a trial's full budget; ASHA's max_t"),
    "batch_size": f("int", 128, rng(2, 1_000_000)),
    "optimizer": f("str", "sgd", choices=OPTIMIZERS),
    "lr": f("float", 0.01, rng(0, 1e6, lo_open=True)),
    "lr_schedule": f("str", "constant", choices=LR_SCHEDULES, doc="cosine: decays to 0 over epochs"),
    "momentum": f("float", 0.9, rng(0, 1, hi_open=True), doc="sgd: β of the velocity average"),
    "beta1": f("float", 0.9, rng(0, 1, hi_open=True), doc="adam/adamw"),
    "beta2": f("float", 0.999, rng(0, 1, hi_open=True), doc="adam/adamw"),
    "weight_decay": f("float", 0.0, rng(0, 1e6)),
    "seed": f("int", 0, rng(0, MAX_SEED), doc="the initialisation and the batch order"),
    "amp": f("bool", False, doc="bf16 autocast on CUDA (ignored on the CPU)"),
    "task": f(
        "str",
        None,
        choices=TASKS,
        nullable=True,
        doc="classification | regression (default: the data's targets decide)",
    ),
    "precise_bn": f(
        "int",
        0,
        rng(0, 10_000),
        doc="training batches that re-estimate BN's statistics before each validation (0: off)",
    ),
}

SEARCH_FIELDS: dict[str, Field] = {
    "method": f("str", "random", choices=METHODS),
    "num_samples": f("int", None, rng(1, MAX_TRIALS), nullable=True, doc="first round's trials (32; grid: its points)"),
    "seed": f("int", 0, rng(0, MAX_SEED), doc="the same seed gives the same configurations"),
    "max_concurrent": f("int", 0, rng(0, 100_000), doc="0: as many trials at once as resources allow"),
    "parameters": f("mapping", {}, doc="dotted paths into the config: a distribution or values (grid: <= 1e6 trials)"),
    "refine": f("mapping", None, nullable=True, doc="coarse-to-fine rounds after the first"),
}

REFINE_FIELDS: dict[str, Field] = {
    "rounds": f("int", 1, rng(0, 100), doc="refine rounds after the first"),
    "top_k": f("int", 5, rng(1, 100_000), doc="configurations whose span sets the next round's ranges"),
    "num_samples": f("int", 16, rng(1, MAX_TRIALS), doc="trials per refine round"),
    "margin": f("float", 0.1, rng(0, 100), doc="the span widens by this fraction of itself on each side"),
}

PARAMETER_KEYS = ("distribution", "min", "max", "values", "grid_points")

SCHEDULER_FIELDS: dict[str, Field] = {
    "name": f("str", "asha", choices=SCHEDULERS, doc="asha | none (every trial runs its full budget)"),
    "grace_period": f("int", 1, rng(1, 100_000), doc="epochs before ASHA's first decision"),
    # η 4 with grace 1: ≥ 5x fewer epochs than full-budget search at its test accuracy (BENCHMARKS.md, bn_rungs)
    "reduction_factor": f("float", 4, rng(2, 1000), doc="η: ASHA keeps the best 1/η at each rung"),
    "brackets": f("int", 1, rng(1, 10)),
    "max_t": f(
        "int",
        None,
        rng(1, 100_000),
        nullable=True,
        doc="the budget in reports (built-in: train.epochs; required for asha with a function)",
    ),
}

# Ray counts a resource in units of 0.0001 and refuses a fractional amount that is none of them.
RESOURCE_UNIT = 0.0001
RESOURCES_FIELDS: dict[str, Field] = {
    "cpu": f(
        "float",
        1,
        rng(RESOURCE_UNIT, 10_000),
        doc="CPUs per trial (fractional allowed, in Ray's units of 0.0001; sets torch threads)",
    ),
    "gpu": f(
        "float",
        0,
        (
            (lambda v: v == 0 or (RESOURCE_UNIT <= v <= 1024 and (v <= 1 or float(v).is_integer()))),
            "must be 0 or at least 0.0001 (Ray's resource unit), and a whole number when above 1",
        ),
        doc="GPUs per trial; 0.25 packs four trials on one GPU",
    ),
}

SECTIONS: dict[str, dict[str, Field]] = {
    "": TOP_FIELDS,
    "data": DATA_FIELDS,
    "model": MODEL_FIELDS,
    "train": TRAIN_FIELDS,
    "search": SEARCH_FIELDS,
    "search.refine": REFINE_FIELDS,
    "scheduler": SCHEDULER_FIELDS,
    "resources": RESOURCES_FIELDS,
}

KIND_TEXT = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "name": "a name",
    "ints": "a list of positive integers",
    "mapping": "a mapping",
    "list": "a list",
    "any": "a value",
}
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
MAX_WIDTH = 1_000_000


def convert(kind: str, v: Any) -> tuple[bool, Any]:
    """``v`` as a value of ``kind`` (PyYAML reads ``1e-4`` without a dot as a string: it is
    a number here); (False, v) when it is not one. Numbers must be finite."""
    if kind == "any":
        return True, v
    if kind == "bool":
        return isinstance(v, bool), v
    if kind in ("str", "name"):
        return isinstance(v, str), v
    if kind == "mapping":
        return isinstance(v, dict), v
    if kind == "list":
        return isinstance(v, list), v
    if isinstance(v, bool):
        return False, v
    if kind == "int":
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
            return True, int(v)
        return isinstance(v, int), v
    if kind == "float":
        if isinstance(v, (int, float)):
            try:
                x = float(v)
            except OverflowError:
                return False, v
            return math.isfinite(x), x
        if isinstance(v, str) and len(v) < 40 and _FLOAT_TEXT.match(v.strip()):
            x = float(v)
            return math.isfinite(x), x
        return False, v
    if kind == "ints":
        ok = (
            isinstance(v, list)
            and 0 < len(v) <= 100
            and all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= MAX_WIDTH for x in v)
        )
        return ok, v
    raise AssertionError(f"unknown field kind {kind}")


def kind_text(fld: Field) -> str:
    """How a field's type reads in a problem line."""
    if fld.kind == "float":
        return "a finite number"
    if fld.kind == "ints":
        return f"a non-empty list of integers in [1, {MAX_WIDTH}]"
    return KIND_TEXT[fld.kind]
