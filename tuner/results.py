"""Reading a run directory: its metadata, resolved sweep, and every trial's history.

A run directory holds ``sweep.yaml``, ``run.json`` and one folder per round in which Ray Tune
keeps a folder per trial with ``params.json`` (the searched values) and ``result.json`` (one
JSON line per report). Everything here reads those files -- and never runs code named in
them -- so a run can be exported or reported on after the driver is gone, and a damaged or
hostile run directory is bad input (one line), not a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import InputError, show
from tuner.files import MAX_FILE_BYTES, NOT_JSON, json_lines, load_json, load_yaml, read_bytes, read_json_lines
from tuner.records import (
    DIVERGED,
    EPOCH,
    RAY_KEYS,
    ROUND_KEY,
    RUN_FILE,
    SWEEP_FILE,
    TIMEOUT_FILE,
    TIMEOUT_TRACE_FILE,
    RunMeta,
    RunStatus,
    TrialRecord,
    TrialStatus,
    rank,
)
from tuner.spec import Sweep, from_dict

# A trial's id in its folder's name: tuner's trials are run_trial_<8 hex>_<n>_..., Ray's own
# default ids <5 hex>_<5 digits> (older runs).
_TRIAL_ID = re.compile(r"^run_trial_([0-9a-f]{8})_\d+_|_([0-9a-f]{5}_\d{5})_")
# What a history entry keeps of Ray's own keys: when the epoch ended, and where.
_KEPT_RAY_KEYS = ("time_total_s", "timestamp", "time_this_iter_s", "pid")


@dataclass
class RunDir:
    """A run directory: its metadata, resolved sweep and every round's trials."""

    path: Path
    meta: RunMeta
    sweep: Sweep
    trials: list[TrialRecord] = field(default_factory=list)
    # trial folders that could not be read: (folder, why), in the order found
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:  # a notebook shows a run in a line, never its trials' histories
        return f"RunDir({str(self.path)!r}, {self.meta.status.value}, {len(self.trials)} trials, {self.metric} {self.mode})"

    @property
    def metric(self) -> str:
        return self.sweep.metric

    @property
    def mode(self) -> str:
        return self.sweep.mode

    def ranked(self, rounds: list[int] | None = None) -> list[TrialRecord]:
        """Trials with a score, best first (ties: more epochs first)."""
        return rank([t for t in self.trials if rounds is None or t.round in rounds], self.metric, self.mode)

    def unreadable_note(self) -> str | None:
        """One line saying how many trial folders could not be read (and the first, with why),
        or None when every one was: the run's best may be among them."""
        if not self.unreadable:
            return None
        n = len(self.unreadable)
        folder, why = self.unreadable[0]
        return (
            f"{self.path}: {n} trial folder{'s' if n > 1 else ''} could not be read and "
            f"{'are' if n > 1 else 'is'} left out (the run's best may be among them); the first: {folder}: {why}"
        )

    def metrics(self) -> list[str]:
        """Every metric some trial reported, the sweep's first."""
        seen = {self.metric: None}
        for t in self.trials:
            seen.update(dict.fromkeys(t.metrics()))
        return list(seen)


def load_sweep_copy(path: Path) -> Sweep:
    """A run directory's ``sweep.yaml``, validated without importing code or looking for files.

    Raises:
        InputError: unreadable, or not a valid sweep (each problem named).
    """
    raw = load_yaml(read_bytes(path, what="sweep file"), str(path))
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a tuner run directory's sweep (the top level must be a mapping)")
    return from_dict(raw, source=str(path), offline=True)


def load_meta(path: Path) -> RunMeta:
    """A run directory's ``run.json``.

    Raises:
        InputError: unreadable or malformed, naming the key.
    """
    return RunMeta.from_dict(load_json(read_bytes(path, what="run.json"), str(path)), str(path))


def load_run(run_dir: str | Path, ended: bool = False) -> RunDir:
    """Read a run directory.

    ``ended``: the run's rounds are over, whatever ``run.json`` still says (its driver reads
    it to end it, before saving its final status): no trial of it is ``running``.

    Raises:
        InputError: the directory is missing, is not a tuner run, or its files are malformed.
    """
    path = Path(run_dir)
    meta_file, sweep_file = path / RUN_FILE, path / SWEEP_FILE
    try:
        if not path.is_dir():
            os.stat(path)  # a loop of links, no permission...: what the system says (below), not "no such"
            raise InputError(f"{str(run_dir)[:200]}: is a file, not a run directory")
        if not meta_file.is_file() or not sweep_file.is_file():
            raise InputError(f"{str(run_dir)[:200]}: not a tuner run directory (no {RUN_FILE} / {SWEEP_FILE})")
    except FileNotFoundError:
        raise InputError(f"{str(run_dir)[:200]}: no such run directory") from None
    except OSError as e:  # a name too long, no permission, a loop of links...
        raise InputError(f"{str(run_dir)[:200]}: cannot read ({e.strerror or type(e).__name__})") from None
    run = RunDir(path, load_meta(meta_file), load_sweep_copy(sweep_file))
    folders: dict[str, int] = {}  # every round shares one experiment folder (tuner 0.1: one each)
    for r in run.meta.rounds:
        folders.setdefault(r.dir, r.index)
    for folder, index in folders.items():
        unfinished = not ended and run.meta.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED)
        run.trials.extend(load_trials(path / folder, index, run.sweep.max_t, run.unreadable, unfinished))
    run.trials = _one_a_trial(run.trials, run.unreadable)
    _check_params(run)
    return run


def _one_a_trial(trials: list[TrialRecord], unreadable: list[tuple[str, str]]) -> list[TrialRecord]:
    """``trials`` with each trial id once: a trial folder copied beside itself (``cp -a``, a
    sync) is the trial with the most epochs; the other copies are noted in ``unreadable``."""
    kept: dict[str, TrialRecord] = {}
    for t in trials:
        other = kept.get(t.trial_id)
        if other is None or t.epochs > other.epochs:
            kept[t.trial_id] = t
        if other is not None:
            dropped, first = (other, t) if kept[t.trial_id] is t else (t, other)
            unreadable.append((dropped.path, f"the same trial ({t.trial_id}) as {first.path}: a copy, left out"))
    return [t for t in trials if kept[t.trial_id] is t]


def load_trials(
    round_dir: Path,
    round_index: int,
    max_t: int | None,
    unreadable: list[tuple[str, str]] | None = None,
    unfinished: bool = False,
) -> list[TrialRecord]:
    """Every trial Ray Tune recorded under one round's folder; a trial folder that cannot be
    read (:func:`trial_damage`) is appended to ``unreadable`` as (folder, why). ``unfinished``:
    the run was interrupted or is going on, so a trial not known to have ended is ``running``."""
    if not round_dir.is_dir():
        return []
    trials = []
    for d in sorted(p for p in round_dir.iterdir() if p.is_dir() and not p.is_symlink() and _is_trial_folder(p)):
        try:
            record = _load_trial(d, round_index, max_t, unfinished)
            why = trial_damage(d) if record is None or not record.history else None  # a report read: whole
        except OSError as e:  # no permission, an I/O error...
            record, why = None, f"cannot be read ({e.strerror or type(e).__name__})"
        except InputError as e:  # a file of it too large, or not a regular file
            record, why = None, str(e).removeprefix(f"{d}/")
        if why is not None and unreadable is not None:
            unreadable.append((str(d), why))
        if record is not None:
            trials.append(record)
    return trials


# What Ray Tune writes into every trial's folder; a folder holding none of them is not a trial's.
_TRIAL_FILES = ("params.json", "params.pkl", "result.json", "progress.csv", "error.txt")


def _is_trial_folder(d: Path) -> bool:
    return any(os.path.lexists(d / name) for name in _TRIAL_FILES)


def trial_damage(d: Path) -> str | None:
    """Why trial folder ``d`` cannot be read in full, or None.

    Damaged: ``params.json`` missing, not a regular file or not a JSON object (unless it is
    empty and nothing was reported: a driver killed as the trial started, nothing lost), or
    ``result.json`` not a regular file, holding bytes of which no line is JSON, or empty
    though the trial saved a checkpoint (it reported)."""
    params, result = d / "params.json", d / "result.json"
    if os.path.lexists(result) and not result.is_file():
        return "result.json is not a regular file"
    lines = _result_lines(result)
    if lines is not None and not lines[1]:
        if lines[0]:
            return f"result.json: none of its {lines[0]} lines is JSON"
        if any(c.name.startswith("checkpoint_") for c in d.iterdir()):
            return "result.json is empty, though the trial saved a checkpoint"
    reported = bool(lines and lines[1])
    if not os.path.lexists(params):
        return None if reported else "no params.json (and no report holds the trial's config)"
    if not params.is_file():
        return "params.json is not a regular file"
    if params.stat().st_size > MAX_FILE_BYTES:
        return f"params.json is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"
    if _read_params(params) is None and (params.stat().st_size or reported):
        return "params.json is not a JSON object of parameters"
    return None


def _result_lines(path: Path) -> tuple[int, int] | None:
    """(non-empty lines, lines that are JSON) of a regular ``result.json``, or None when absent."""
    if not path.is_file():
        return None
    total = good = 0
    for value in json_lines(path, errors="replace"):
        total += 1
        good += value is not NOT_JSON
    return total, good


def _read_params(path: Path) -> dict[str, Any] | None:
    if not path.is_file():  # missing, a folder, a pipe (which would wait for a writer)
        return None
    try:
        params = json.loads(read_bytes(path, what="params.json").decode("utf-8", errors="replace"))
    except (InputError, ValueError, RecursionError):
        return None  # cut short by a killed driver (the results carry the same config), or too large
    return params if isinstance(params, dict) and all(isinstance(k, str) for k in params) else None


def _entry(row: dict[str, Any]) -> dict[str, Any] | None:
    """One report of ``result.json`` as a history entry (None for a row that is not one)."""
    epoch = row.get(EPOCH)
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or not 1 <= epoch < 10**9 or int(epoch) != epoch:
        return None
    out: dict[str, Any] = {EPOCH: int(epoch)}
    for k, v in row.items():
        if k in RAY_KEYS and k not in _KEPT_RAY_KEYS or k == EPOCH:
            continue
        if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 200):
            out[k] = v
    return out


def _load_trial(d: Path, round_index: int, max_t: int | None, unfinished: bool = False) -> TrialRecord | None:
    """One trial's record, or None for a trial that a killed driver left with neither its
    params (``params.json`` empty or cut short) nor a reported result: it has nothing to lose,
    and Ray rewrites the folder when the run resumes."""
    params = _read_params(d / "params.json")
    by_epoch: dict[int, dict[str, Any]] = {}
    node = hostname = node_id = trial_id = ""
    sessions = 0
    result_file = d / "result.json"
    if result_file.is_file():
        for row in read_json_lines(result_file, errors="replace"):  # a line cut short by a crash is skipped
            if not isinstance(row, dict):
                continue
            entry = _entry(row)
            if entry is None:
                continue
            if params is None and isinstance(row.get("config"), dict):
                params = row["config"]
            by_epoch[entry[EPOCH]] = entry  # a restored trial may report an epoch twice: keep the last
            sessions += row.get("iterations_since_restore") == 1  # the first report of a start or restart
            node = str(row.get("node_ip", node))[:100]
            hostname = str(row.get("hostname", hostname))[:100]
            trial_id = str(row.get("trial_id", trial_id))[:100]
            node_id = str(row.get("node_id", node_id))[:100]
    if params is None:
        return None
    params = dict(params)
    recorded = params.pop(ROUND_KEY, None)  # the round the searcher drew it in
    if isinstance(recorded, int) and not isinstance(recorded, bool) and 0 <= recorded < 10_000:
        round_index = recorded
    if not trial_id:
        m = _TRIAL_ID.search(d.name)
        trial_id = (m.group(1) or m.group(2)) if m else d.name[:100]
    history = [by_epoch[e] for e in sorted(by_epoch)]
    tail = _error_tail(d / "error.txt")
    error = None if tail is None else _failure_line(d, tail)
    if error is not None and sessions > _failures(tail):  # failed, restarted and reported after its last failure
        error = None  # (a lost node's trial, restored from its checkpoint): not a failed trial
    last = history[-1][EPOCH] if history else 0
    if history and history[-1].get(DIVERGED):
        status = TrialStatus.DIVERGED
    elif history and max_t and last >= max_t:
        status = TrialStatus.FINISHED
    elif error is not None:
        status = TrialStatus.ERROR
    elif unfinished and (not history or not max_t):  # cut short by an interrupt, or not started yet
        status = TrialStatus.RUNNING
    elif history and not max_t:  # a function with no stated budget: it ran until it returned
        status = TrialStatus.FINISHED
    else:
        status = TrialStatus.STOPPED
    return TrialRecord(trial_id, round_index, params, history, status, node, hostname, error, str(d), node_id)


def trial_error(path: Path) -> str | None:
    """The error a trial failed with (:func:`error_line`), from Ray's ``error.txt`` at ``path``;
    None where there is none.

    Raises:
        OSError: the file is there but cannot be read.
    """
    tail = _error_tail(path)
    return None if tail is None else _failure_line(path.parent, tail)


def _failure_line(folder: Path, tail: str) -> str:
    """The trial's failure from the end of its ``error.txt``: the user's error where it raised
    one, else why tuner ended its process (:func:`timeout_reason`: Ray's error cannot say it,
    the process just died), else Ray's last line."""
    lines = tail.strip().splitlines()
    if not any("TrialError: " in line for line in lines):
        reason = timeout_reason(folder)
        if reason:
            return reason
    return error_line(lines)


def timeout_reason(folder: Path) -> str | None:
    """Why tuner ended the process of the trial whose folder is ``folder`` as hung
    (``trial_timeout``): its :data:`TIMEOUT_FILE`, or a note of its :data:`TIMEOUT_TRACE_FILE`
    when a call never let the Python watcher run; None when it did not (or neither can be read)."""
    try:
        reason = (folder / TIMEOUT_FILE).read_text(encoding="utf-8", errors="replace")[:500].strip()
    except OSError:  # none (the usual case), or unreadable
        reason = ""
    if reason:
        return reason
    try:
        starved = (folder / TIMEOUT_TRACE_FILE).stat().st_size > 0
    except OSError:
        starved = False
    if starved:  # faulthandler's watchdog ended it: a call never let the Python watcher run
        return (
            "no report within its trial_timeout: stopped as hung, in a call that never let Python run "
            f"(where each thread was: {TIMEOUT_TRACE_FILE})"
        )
    return None


def _error_tail(path: Path) -> str | None:
    """The end of Ray's ``error.txt`` (its last failure's traceback ends there): 64 KB at most."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
        return f.read().decode("utf-8", errors="replace")


def _failures(tail: str) -> int:
    """How many times the trial failed: Ray heads each failure in ``error.txt`` with
    ``Failure # N (occurred at ...)``; 1 where the file says nothing of it."""
    counts = re.findall(r"^Failure # (\d{1,6}) \(occurred at", tail, flags=re.MULTILINE)
    return int(counts[-1]) if counts else 1


def error_line(lines: list[str]) -> str:
    """The error a trial failed with, from Ray's ``error.txt``: our one-line summary of the
    user's error where there is one, else the last line."""
    for line in reversed(lines):
        if "TrialError: " in line:
            return line.split("TrialError: ", 1)[1].strip()[:500]
    return (lines[-1] if lines else "").strip()[:500]


def _check_params(run: RunDir) -> None:
    """Every trial's value of a searched number is a finite number: a damaged or hostile
    ``params.json`` is bad input naming the trial, not a crash of whatever reads the run.

    Raises:
        InputError: naming the trial's folder, the parameter and its value.
    """
    numeric = {p.path: p.distribution for p in run.sweep.search.parameters if not p.categorical}
    for t in run.trials:
        for key, dist in numeric.items():
            if key not in t.params:
                continue
            v = t.params[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(
                    f"{t.path}: params: {key}: {show(v)} must be a finite number (a {dist} parameter of {SWEEP_FILE})"
                )
