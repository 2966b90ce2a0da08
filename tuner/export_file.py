"""The export file: the best configuration of a run, as a file that trains the final model.

Contract (``docs/design.md``)::

    metric: val_acc
    mode: max
    score: 0.713                     # the best trial's last reported metric
    params: {train.lr: 0.031, ...}   # its searched values
    config: {...}                    # the whole resolved sweep with params applied, no search left
    top: [{params, score, trial, round, epochs, status}, ...]   # the best k, best first
    provenance: {sweep_sha256, run_dir, created, versions, ...}

``config`` is itself a valid sweep: ``tuner run`` of it re-creates the best trial, and
``tuner train``/``tuner retest`` read it. YAML and JSON exports hold the same content. An
export given to a command is validated as rigorously as a sweep file, before anything starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner import arguments
from tuner.errors import InputError, RunError, show, warn_stderr
from tuner.exportable import DEFAULT_TOP_K, best_config, exportable
from tuner.files import load_json, load_yaml, read_bytes, strict, write_json, write_yaml
from tuner.lock import driver_state, locked
from tuner.outputs import check_not_input, check_output
from tuner.records import EXPORT_FILE, Export, RetestEntry, RunStatus, TopEntry, TrialStatus, history_path, now
from tuner.results import RunDir, load_run
from tuner.space import get_path, same_value
from tuner.spec import Sweep, from_dict

FORMATS = ("yaml", "json")


def ordered(params: dict[str, Any], sweep: Sweep) -> dict[str, Any]:
    """``params`` in the order the sweep file lists its parameters."""
    order = [p.path for p in sweep.search.parameters]
    return dict(sorted(params.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def build(run: RunDir, top_k: int = DEFAULT_TOP_K, warn: Callable[[str], None] = warn_stderr) -> Export:
    """The export of ``run`` (see the module docstring): its best ``top_k`` exportable trials
    (:func:`exportable`).

    Raises:
        InputError: no trial of the run reported a score yet, none has a finite one, or the
            best trial's parameters are not valid for the run's sweep.
    """
    note = run.unreadable_note()
    if note is not None:  # its best may be among them: exporting the second best silently would mislead
        warn(note)
    if not run.ranked():
        raise InputError(f"{run.path}: no trial has reported {run.metric} yet; nothing to export")
    ranked = exportable(run, top_k, warn)
    best = ranked[0]
    if best.status is TrialStatus.ERROR:  # ranked after every trial that did not fail: none did
        warn(
            f"{run.path}: every trial with a finite {run.metric} failed; the best exported, trial "
            f"{best.trial_id}, failed too: {best.error or 'no error recorded'}"
        )
    prov = dict(run.meta.provenance)
    prov.update(
        {
            "run_dir": str(run.path.resolve()),
            "created": now(),
            "run_created": run.meta.created,
            "run_finished": run.meta.finished,
            "run_status": run.meta.status.value,
        }
    )
    sweep = run.sweep.to_dict()
    return Export(
        metric=run.metric,
        mode=run.mode,
        score=best.score(run.metric),
        params=ordered(best.params, run.sweep),
        config=best_config(sweep, best.params),
        top=[
            TopEntry(
                params=ordered(t.params, run.sweep),
                score=t.score(run.metric),
                trial=t.trial_id,
                round=t.round,
                epochs=t.epochs,
                status=t.status.value,
                error=t.error if t.status is TrialStatus.ERROR else None,
                metrics={k: t.history[-1][k] for k in t.metrics() if k in t.history[-1]},  # all it reported
            )
            for t in ranked
        ],
        provenance=prov,
    )


def write(export: Export, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write an export atomically; ``fmt`` defaults to the file's suffix (``.json`` or YAML).

    Both forms are strict: a non-finite number (a retest whose seeds all diverged) is written
    as null. What is written is first checked as :func:`load` checks a file (without importing
    code), so tuner never writes an export it would refuse to read.

    Raises:
        InputError: a format other than yaml or json, or an export the reader would refuse.
    """
    fmt = fmt or ("json" if str(path).endswith(".json") else "yaml")
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    data = strict(export.to_dict())
    validate(data, str(path), Path(path).parent, check_code=False)
    return write_json(path, data) if fmt == "json" else write_yaml(path, data)


def export_run(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    top_k: int = DEFAULT_TOP_K,
    fmt: str | None = None,
) -> Path:
    """Export a run directory (a path, or a URI such as ``s3://bucket/runs/name``: its files are
    downloaded first) as its best configuration; returns the file written (default
    ``RUN_DIR/best.yaml``, or ``best.json`` with ``fmt="json"``; for a URI, the local mirror's
    copy, uploaded beside the run).

    Raises:
        InputError: a bad ``top_k`` or ``fmt``, an ``output`` that cannot be written or would
            overwrite a file of the run directory (nothing written), or a run with nothing to
            export (:func:`build`).
    """
    from tuner.storage import RunStore

    arguments.integer(top_k, "--top-k", 1)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format: {show(fmt, 40)} is not one of {', '.join(FORMATS)}")
    if output is not None:
        check_not_input(output, [run_dir])  # the run's own records are what this reads
        output = check_output(output)  # ~ expanded: what is checked is what is written
    store = RunStore.open(run_dir)
    run = load_run(store.local)
    default = output is None
    if output is None:
        output = store.local / ("best.json" if fmt == "json" else EXPORT_FILE)
        try:  # before any work: a read-only run directory is bad input, not a failure at the end
            check_output(output, "RUN_DIR")
        except InputError as e:
            raise InputError(f"{e.problems[0]}; export elsewhere with -o FILE") from None
    if run.meta.status is RunStatus.RUNNING and driver_state(store.local) == "gone":
        warn_stderr(
            f"{run_dir}: the run is unfinished (run.json says running, but its driver is not running: it was "
            f"killed?): exporting the trials that reported; continue it with tuner resume {run_dir}"
        )
    elif run.meta.status is RunStatus.INTERRUPTED:
        warn_stderr(
            f"{run_dir}: the run was interrupted, some trials short of their budget: exporting the trials that "
            f"reported; continue it with tuner resume {run_dir}"
        )
    export = build(run, top_k)
    try:
        # an export being replaced: a retest rewriting it waits, and its section is kept
        with locked(output) if Path(output).is_file() else contextlib.nullcontext():
            path = write(keep_retest(export, Path(output)), output, fmt)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as e:
        raise InputError(f"-o: {output}: cannot write ({e.strerror or e})") from None
    except OSError as e:
        raise RunError(f"cannot write {output}: {e.strerror or e}") from None
    if default and store.uri is not None:
        try:
            store.push(path.name)
        except OSError as e:
            raise RunError(f"cannot upload {path.name} to {store.uri}: {e}") from None
    return path


def keep_retest(export: Export, target: Path, warn: Callable[[str], None] = warn_stderr) -> Export:
    """``export`` as it is to replace the export at ``target``: when that file holds a retest
    of ``export``'s configuration (its ``params`` among those re-tested), the retest applied
    again (:func:`tuner.verdict.updated_export`), so exporting a run again keeps its retest;
    when it holds a retest of other configurations, ``export`` as it is, and a warning saying
    that the old retest results and history were for another configuration."""
    from tuner.verdict import updated_export  # it builds on this module

    try:
        section = read(target).retest if target.is_file() else None
        entry = None if section is None else RetestEntry.from_dict(section, str(target), "retest.")
    except InputError:  # a damaged export is replaced
        return export
    if entry is None or not entry.results:
        return export
    if any(dict(r.params) == dict(export.params) for r in entry.results):
        kept = updated_export(export, entry)
        kept.retest = section  # as it was written
        return kept
    warn(
        f"{target}: its retest results (and {history_path(target).name} beside it) were for another configuration "
        "than the one exported now; the new export holds no retest (retest it again)"
    )
    return export


def read(path: str | os.PathLike[str]) -> Export:
    """An export file (YAML or JSON) with the types of its fields checked (no code imported).

    Raises:
        InputError: missing, unreadable or not an export, naming the key.
    """
    p = Path(path)
    data = read_bytes(p, what="export file")
    parsed = load_json(data, str(path)) if p.suffix == ".json" else load_yaml(data, str(path))
    if not isinstance(parsed, dict):
        raise InputError(f"{path}: not an export file (the top level must be a mapping)")
    return Export.from_dict(parsed, str(path))  # its schema checked (check_export), not its config


def load(path: str | os.PathLike[str], check_code: bool = True) -> tuple[Export, Sweep]:
    """An export file validated as rigorously as a sweep (:func:`validate`).

    Raises:
        InputError: every problem, naming the file and the key.
    """
    p = Path(path)
    data = read_bytes(p, what="export file")
    parsed = load_json(data, str(path)) if p.suffix == ".json" else load_yaml(data, str(path))
    return validate(parsed, str(path), p.parent, check_code)


def load_sweep(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Sweep:
    """A sweep file, or an export file (its ``config``, :func:`tuner.spec.load_sweep`) once the
    export has been checked in full (:func:`validate`): ``tuner run EXPORT`` trains the
    configuration ``tuner train`` and ``tuner retest`` would, or nothing.

    Raises:
        InputError: every problem of the file, one line each.
    """
    from tuner.spec import is_export
    from tuner.spec import load_sweep as load_spec

    p = Path(path)
    try:
        data = read_bytes(p, what="sweep file")
        parsed = load_json(data, str(path)) if p.suffix == ".json" else load_yaml(data, str(path))
    except InputError:
        return load_spec(path, overrides)  # the sweep's own reader says what is wrong
    if isinstance(parsed, dict) and is_export(parsed):
        validate(parsed, str(path), p.parent)
    return load_spec(path, overrides, document=(data, parsed))  # read and parsed once


def validate(data: Any, source: str, base_dir: Path, check_code: bool = True) -> tuple[Export, Sweep]:
    """An export's parsed content checked against its schema: every section's keys, types,
    ranges and finite numbers (:func:`tuner.records.export_schema.check_export`), its ``config`` as a
    sweep (``check_code``: its functions imported), and ``params`` and every ``top`` entry's
    parameters as paths into that config with values the sweep accepts.

    Raises:
        InputError: every problem, naming the file and the key path.
    """
    export = Export.from_dict(data, source)
    try:
        sweep = from_dict(export.config, source=f"{source}: config", base_dir=base_dir, offline=not check_code)
    except InputError as e:
        raise InputError(
            [line.replace(f"{source}: config: ", f"{source}: config.", 1) for line in e.problems]
        ) from None
    problems: list[str] = []
    if export.metric != sweep.metric or export.mode != sweep.mode:
        problems.append(
            f"{source}: metric/mode: {export.metric} {export.mode} differ from config's {sweep.metric} {sweep.mode}"
        )
    entries = [("params", export.params)] + [(f"top[{i}].params", t.params) for i, t in enumerate(export.top)]
    invalid: set[str] = set()
    for where, params in entries:
        try:
            check_params(params, sweep, f"{source}: {where}", base_dir, check_code)
        except InputError as e:
            problems.extend(e.problems)
            invalid.add(where)
        if len(problems) >= 100:
            break
    if not invalid & {"params", "top[0].params"}:  # what is compared has been named already
        problems.extend(consistency(export, sweep, source))
    if problems:
        raise InputError(problems[:100])
    return export, sweep


def consistency(export: Export, sweep: Sweep, source: str) -> list[str]:
    """Every place where an export disagrees with itself: ``config`` must be the configuration
    with ``params`` applied (each of its values at a parameter's path the parameter's), and the
    best of ``top`` (``top[0]``; a retest re-orders ``top`` and moves ``params`` to its new best
    alike) must have ``params``'s values. ``tuner train`` and ``tuner run`` train ``config``,
    ``tuner retest`` trains ``top``: an export whose parts disagree would train another
    configuration than the one it names.

    Returns:
        One line a mismatch, naming the key and both values.
    """
    problems: list[str] = []
    base = sweep.base_config()
    inside = "config." if sweep.builtin else "config.config."
    for key, value in list(export.params.items())[:1000]:
        if not isinstance(key, str):
            continue  # check_params names it
        try:
            have = get_path(base, key)
        except (KeyError, TypeError):
            continue  # check_params names it
        if not same_value(value, have):
            problems.append(
                f"{source}: params.{key[:60]}: {show(value, 60)} differs from {inside}{key[:60]} {show(have, 60)} "
                "(config must be the configuration with params applied)"
            )
    if export.top:
        best = export.top[0].params
        for key in list(dict.fromkeys([*export.params, *best]))[:1000]:
            if key not in best or key not in export.params or not same_value(best[key], export.params[key]):
                mine = show(best[key], 60) if key in best else "absent"
                theirs = show(export.params[key], 60) if key in export.params else "absent"
                problems.append(
                    f"{source}: top[0].params.{str(key)[:60]}: {mine} differs from params.{str(key)[:60]} {theirs} "
                    "(top[0] is the best configuration: its params must be the export's params)"
                )
    return problems


def check_params(params: dict[str, Any], sweep: Sweep, where: str, base_dir: Path, check_code: bool = True) -> Sweep:
    """``sweep`` with ``params`` applied, validated; each path must already exist in it.

    Raises:
        InputError: every unknown path, or the values the sweep's rules refuse.
    """
    base = sweep.to_dict()
    if len(params) > 1000:
        raise InputError(f"{where}: {len(params)} parameters: at most 1000")
    problems = []
    for key in params:
        if not isinstance(key, str) or not key or len(key) > 200:
            problems.append(f"{where}: {str(key)[:60]!r}: a parameter must be a dotted path into the config")
            continue
        # The built-in trainer searches model.* and train.* only (never data, name, resources...);
        # a function's parameters are paths into its config. Either way the key must exist.
        searchable = not sweep.builtin or key.split(".", 1)[0] in ("model", "train")
        try:
            get_path(sweep.base_config(), key)
        except (KeyError, TypeError):
            searchable = False
        if not searchable:
            problems.append(
                f"{where}.{key[:60]}: not a searchable key of the config (an export's parameters must name keys of "
                + ("its model or train sections)" if sweep.builtin else "its config)")
            )
    if problems:
        raise InputError(problems)
    try:
        return from_dict(best_config(base, params), source=where, base_dir=base_dir, offline=not check_code)
    except InputError as e:
        raise InputError(e.problems) from None
