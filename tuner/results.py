"""Reading a run directory: its rounds, their trials, each trial's per-epoch history.

A run directory holds ``sweep.yaml`` (the resolved sweep), ``run.json`` (rounds, times,
status, provenance) and one folder per round (``round-0``, ``round-1``...) in which Ray
Tune keeps a folder per trial with ``params.json`` (the searched values) and
``result.json`` (one JSON line per reported epoch). Everything here reads those files, so
a run can be exported or reported on after the driver is gone.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import InputError
from tuner.files import read_json_lines

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.yaml"
_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})_")
# Keys of a reported result that are metrics of ours rather than Ray's bookkeeping.
METRIC_KEYS = ("epoch", "train_loss", "val_loss", "val_acc", "diverged", "epoch_s", "samples_per_s", "device")


@dataclass
class TrialRecord:
    """One trial as its files tell it."""

    trial_id: str
    round: int
    params: dict[str, Any]  # searched values, keyed by dotted path
    history: list[dict[str, Any]]  # one entry per epoch: the METRIC_KEYS present, plus time_total_s
    status: str  # finished | stopped | diverged | error | running
    node: str = ""  # the node_ip it last reported from
    hostname: str = ""
    error: str | None = None
    path: str = ""
    node_id: str = ""  # Ray's id of the node it last reported from (one machine can hold several nodes)

    @property
    def epochs(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def score(self, metric: str) -> float | None:
        """The trial's last reported value of ``metric`` (None before its first epoch)."""
        if not self.history:
            return None
        v = self.history[-1].get(metric)
        return None if v is None else float(v)

    def to_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "round": self.round, "params": self.params, "status": self.status,
                "epochs": self.epochs, "node": self.node, "history": self.history}


@dataclass
class Run:
    """A run directory: its metadata, resolved sweep and every round's trials."""

    path: Path
    meta: dict[str, Any]
    sweep: dict[str, Any]
    trials: list[TrialRecord] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.sweep["metric"])

    @property
    def mode(self) -> str:
        return str(self.sweep["mode"])

    def ranked(self, rounds: list[int] | None = None) -> list[TrialRecord]:
        """Trials with a score, best first (ties: more epochs first)."""
        scored = [t for t in self.trials if t.score(self.metric) is not None and (rounds is None or t.round in rounds)]
        sign = -1.0 if self.mode == "max" else 1.0
        return sorted(scored, key=lambda t: (_finite(sign * t.score(self.metric)), -t.epochs))  # type: ignore[operator]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory.

    Raises:
        InputError: the directory is missing or is not a tuner run.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    meta_file, sweep_file = path / RUN_FILE, path / SWEEP_FILE
    if not meta_file.is_file() or not sweep_file.is_file():
        raise InputError(f"{run_dir}: not a tuner run directory (no {RUN_FILE} / {SWEEP_FILE})")
    try:
        meta = read_json(meta_file)
        sweep = yaml.safe_load(sweep_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise InputError(f"{run_dir}: unreadable run files ({e})") from None
    try:
        max_t = int(sweep["train"]["epochs"])
        rounds = [(path / r["dir"], int(r["index"])) for r in meta.get("rounds", [])]
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise InputError(f"{run_dir}: not a tuner run directory (malformed {RUN_FILE} / {SWEEP_FILE}: "
                         f"{type(e).__name__}: {e})") from None
    run = Run(path, meta, sweep)
    for round_dir, index in rounds:
        run.trials.extend(load_trials(round_dir, index, max_t))
    return run


def load_trials(round_dir: Path, round_index: int, max_t: int) -> list[TrialRecord]:
    """Every trial Ray Tune recorded under one round's folder."""
    if not round_dir.is_dir():
        return []
    trials = []
    for d in sorted(p for p in round_dir.iterdir() if p.is_dir() and (p / "params.json").is_file()):
        record = _load_trial(d, round_index, max_t)
        if record is not None:
            trials.append(record)
    return trials


def _load_trial(d: Path, round_index: int, max_t: int) -> TrialRecord | None:
    """One trial's record, or None for a trial that a killed driver left with neither its
    params (``params.json`` empty or cut short) nor a reported result: it has nothing to lose,
    and Ray rewrites the folder when the run resumes."""
    try:
        params: dict[str, Any] | None = read_json(d / "params.json")
    except ValueError:
        params = None  # cut short by a killed driver: the results carry the same config
    by_epoch: dict[int, dict[str, Any]] = {}
    node = hostname = node_id = ""
    trial_id = ""
    result_file = d / "result.json"
    if result_file.is_file():
        for row in read_json_lines(result_file):  # a line cut short by a crash is skipped
            if "epoch" not in row:
                continue
            if params is None and isinstance(row.get("config"), dict):
                params = row["config"]
            entry = {k: row[k] for k in METRIC_KEYS if k in row}
            entry["time_total_s"] = row.get("time_total_s")
            by_epoch[int(row["epoch"])] = entry  # a restored trial may report an epoch twice: keep the last
            node, hostname, trial_id = row.get("node_ip", node), row.get("hostname", hostname), row.get("trial_id", "")
            node_id = row.get("node_id", node_id)
    if params is None:
        return None
    if not trial_id:
        m = _TRIAL_ID.search(d.name)
        trial_id = m.group(1) if m else d.name
    history = [by_epoch[e] for e in sorted(by_epoch)]
    error = None
    if (d / "error.txt").is_file():
        error = (d / "error.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [""]
        error = error[0]
    if history and history[-1].get("diverged"):
        status = "diverged"
    elif history and int(history[-1]["epoch"]) >= max_t:
        status = "finished"
    elif error is not None:
        status = "error"
    else:
        status = "stopped"
    return TrialRecord(trial_id, round_index, params, history, status, node, hostname, error, str(d), node_id)
