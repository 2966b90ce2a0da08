"""Which trials of a run may become its export, and the configuration an export holds.

A trial is exported only with a finite score and parameters its run's sweep allows (the
searched paths, each value in its search space, the sweep's config with them a valid sweep):
a run directory is data, and what it holds is checked before it becomes a file that trains.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from tuner.errors import InputError, problem, show, warn_stderr
from tuner.records import SWEEP_FILE, TrialRecord, TrialStatus
from tuner.results import RunDir
from tuner.space import Parameter, apply_params
from tuner.spec import from_dict

DEFAULT_TOP_K = 5


def best_config(sweep: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The resolved sweep (its sweep-file form) with ``params`` applied and nothing left to search."""
    config = copy.deepcopy(sweep)
    for path, value in params.items():
        section, _, rest = path.partition(".")
        if "function" in config and config.get("function"):  # a function's parameters live in its config
            config["config"] = apply_params(config.get("config") or {}, {path: value})
        else:
            config[section] = apply_params(config.get(section) or {}, {rest: value})
    search = config.get("search", {})
    config["search"] = {
        "method": "random",
        "num_samples": 1,
        "seed": int(search.get("seed", 0)),
        "max_concurrent": int(search.get("max_concurrent", 0)),
        "parameters": {},
    }
    return config


# -- what may become an export ----------------------------------------------------------------

# A drawn value may sit a rounding error outside its range (exp(log(max))): tolerated, relatively.
_RANGE_SLACK = 1e-9


def score_problem(run: RunDir, trial: TrialRecord) -> str | None:
    """Why ``trial``'s score (its last report of the sweep's metric) cannot be exported: a
    problem line naming its ``result.json``, or None for a finite score (or none yet)."""
    v = trial.score(run.metric)
    if v is None or math.isfinite(v):
        return None
    return problem(f"{trial.path}/result.json", run.metric, v, "must be a finite number to be exported")


def params_problem(run: RunDir, trial: TrialRecord) -> str | None:
    """Why ``trial``'s parameters (its ``params.json``) are not valid for ``run``'s sweep: a
    problem line naming the file, the key, the value and the rule, or None when they are.

    Valid: only the sweep's searched paths, each value in its search space (one of its
    ``values``, or a finite number within its ``[min, max]``, an integer for an integer
    distribution), and the sweep's config with them applied a valid sweep.
    """
    source = f"{trial.path}/params.json"
    searched = {p.path: p for p in run.sweep.search.parameters}
    for key in list(trial.params)[:1000]:
        if key not in searched:
            return problem(source, "", key, f"is not a searched parameter of {SWEEP_FILE} ({_names(searched)})")
    for key, param in searched.items():
        if key not in trial.params:
            continue  # the sweep's own value applies (and is checked below)
        rule = _outside(param, trial.params[key])
        if rule is not None:
            return problem(source, key, trial.params[key], f"{rule} (search.parameters.{key} of {SWEEP_FILE})")
    try:
        from_dict(best_config(run.sweep.to_dict(), trial.params), source=source, offline=True)
    except InputError as e:
        return e.problems[0]
    return None


def _names(searched: dict[str, Parameter]) -> str:
    return "one of " + ", ".join(searched) if searched else "it searches nothing"


def _outside(param: Parameter, value: Any) -> str | None:
    """The rule of ``param``'s search space that ``value`` breaks, or None."""
    if param.values is not None:
        ok = any(type(value) is type(v) and value == v for v in param.values)
        ok = ok or any(_same_number(value, v) for v in param.values)
        return None if ok else f"is not one of its values {show(list(param.values))}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a finite number"
    low, high = float(param.low or 0.0), float(param.high or 0.0)
    slack = _RANGE_SLACK * max(abs(low), abs(high), 1e-300)
    if not low - slack <= value <= high + slack:
        return f"must be in [{param.low:g}, {param.high:g}]"
    if param.is_int and float(value) != int(value):
        return "must be an integer"
    return None


def _same_number(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return numbers and a == b


def exportable(run: RunDir, top_k: int = DEFAULT_TOP_K, warn: Callable[[str], None] = warn_stderr) -> list[TrialRecord]:
    """The best ``top_k`` trials of ``run`` that may become an export, best first.

    A trial is exportable when its score is finite (:func:`score_problem`) and
    its parameters are valid for the run's sweep (:func:`params_problem`). A diverged trial without a finite score is
    left out quietly; any other trial that is not exportable is left out with a warning, except
    the run's best (the first by score), whose problem is refused: an export that silently held
    the second best would mislead.

    Raises:
        InputError: no trial has a finite score, or the best trial's parameters are not valid.
    """
    out: list[TrialRecord] = []
    for t in run.ranked():
        bad_score = score_problem(run, t)
        reason = bad_score or params_problem(run, t)
        if reason is None:
            out.append(t)
            if len(out) >= top_k:
                break
        elif bad_score is None and not out:
            raise InputError(f"{reason} (the run's best trial: nothing exported)")
        elif bad_score is None or t.status is not TrialStatus.DIVERGED:
            warn(f"{reason}: left out of the export")
    if not out:
        raise InputError(f"{run.path}: no trial has a finite {run.metric}; nothing to export")
    return out
