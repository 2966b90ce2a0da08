"""``run.json`` and the trials a run directory holds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tuner.errors import InputError
from tuner.records import BOOKKEEPING, EPOCH, EXPERIMENT_DIR, RAY_KEYS, RunStatus, TrialStatus, now, sign
from tuner.records.fields import Fields, plain

# -- run.json ---------------------------------------------------------------------------------


@dataclass
class RoundRecord:
    """One round of a sweep: the first, then each refine round."""

    index: int
    dir: str  # the experiment folder holding its trials (EXPERIMENT_DIR)
    seed: int  # the searcher's seed: search.seed + index
    num_samples: int
    parameters: dict[str, dict[str, Any]]  # the round's ranges, in the sweep-file form
    status: str = "running"  # running | done
    started: str = ""
    finished: str | None = None
    best: dict[str, Any] | None = None  # {trial, score, params} once it has one

    @classmethod
    def from_dict(cls, f: Fields) -> RoundRecord:
        index = f.get("index", int)
        folder = f.get("dir", str, EXPERIMENT_DIR)
        if folder not in (EXPERIMENT_DIR, f"round-{index}"):  # round-N: a run of tuner 0.1
            raise InputError(f"{f.source}: {f.where('dir')}: {folder[:60]!r} must be {EXPERIMENT_DIR!r}")
        return cls(
            index=index,
            dir=folder,
            seed=f.get("seed", int, 0),
            num_samples=f.get("num_samples", int, 0),
            parameters=f.get("parameters", dict, {}),
            status=f.get("status", str, "running"),
            started=f.get("started", str, ""),
            finished=f.get("finished", str, None, nullable=True),
            best=f.get("best", dict, None, nullable=True),
        )


@dataclass
class RunMeta:
    """``run.json``: what a run is and how far it got."""

    name: str
    status: RunStatus = RunStatus.RUNNING
    created: str = field(default_factory=now)
    finished: str | None = None
    location: str = ""  # the run directory as the user names it (a path or a URI)
    cluster: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    rounds: list[RoundRecord] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    error: str | None = None
    failures: list[str] = field(default_factory=list)  # the first error of each kind, when trials failed
    # When the driver got where (epoch seconds): process, sweep_loaded, data_loaded, ray_ready, experiment_started,
    # experiment_ended: where a run's fixed costs went (benchmarks/startup.py, the report's timeline).
    timings: dict[str, float] = field(default_factory=dict)

    def round(self, index: int) -> RoundRecord | None:
        return next((r for r in self.rounds if r.index == index), None)

    def set_round(self, record: RoundRecord) -> None:
        self.rounds = sorted([r for r in self.rounds if r.index != record.index] + [record], key=lambda r: r.index)

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RunMeta:
        f = Fields(data, source)
        name = f.get("name", str)
        status = f.get("status", str)
        if status not in {s.value for s in RunStatus}:
            raise InputError(f"{source}: status: {status[:40]!r} is not one of {', '.join(s.value for s in RunStatus)}")
        rounds = [RoundRecord.from_dict(r) for r in f.items("rounds", [])]
        return cls(
            name=name,
            status=RunStatus(status),
            created=f.get("created", str, ""),
            finished=f.get("finished", str, None, nullable=True),
            location=f.get("location", str, ""),
            cluster=f.get("cluster", dict, {}),
            provenance=f.get("provenance", dict, {}),
            rounds=sorted(rounds, key=lambda r: r.index),
            resumed=f.get("resumed", list, []),
            error=f.get("error", str, None, nullable=True),
            failures=f.get("failures", list, []),
            timings={
                k: float(v)
                for k, v in f.get("timings", dict, {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
        )


# -- trials -----------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """One trial as its files tell it."""

    trial_id: str
    round: int
    params: dict[str, Any]  # searched values, keyed by dotted path
    history: list[dict[str, Any]]  # one entry per epoch: what it reported, plus time_total_s and timestamp
    status: TrialStatus
    node: str = ""  # the node_ip it last reported from
    hostname: str = ""
    error: str | None = None
    path: str = ""
    node_id: str = ""  # Ray's id of the node it last reported from (one machine can hold several nodes)
    # score_at's index of the history (see _by_epoch); not part of the record's value
    _index: tuple[int, int, dict[int, dict[str, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __repr__(self) -> str:  # a notebook shows a trial in a line, never its per-epoch history
        return (
            f"TrialRecord({self.trial_id!r}, round {self.round}, {self.status.value}, {self.epochs} epochs, "
            f"params={self.params!r})"
        )

    @property
    def epochs(self) -> int:
        """Epochs reported (the last report's ``epoch``)."""
        return int(self.history[-1][EPOCH]) if self.history else 0

    def score(self, metric: str) -> float | None:
        """The trial's last reported value of ``metric`` (None before its first epoch)."""
        return self.score_at(metric, None)

    def score_at(self, metric: str, epoch: int | None) -> float | None:
        """``metric`` as reported at ``epoch`` (None: the last report; None when it did not
        reach that epoch or never reported the metric)."""
        if epoch is None:
            row = self.history[-1] if self.history else None
        else:
            row = self._by_epoch().get(epoch)
        if row is None:
            return None
        v = row.get(metric)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def _by_epoch(self) -> dict[int, dict[str, Any]]:
        """The last report of each epoch, built once: the report asks for every epoch of every
        trial, and scanning the history each time made it quadratic in a trial's epochs. It is
        rebuilt when ``history`` is replaced or grows (a record is otherwise read-only)."""
        key = (id(self.history), len(self.history))
        if self._index is None or self._index[:2] != key:
            index: dict[int, dict[str, Any]] = {}
            for h in self.history:
                index[int(h[EPOCH])] = h  # a later report of the same epoch wins, as before
            self._index = (*key, index)
        return self._index[2]

    def metrics(self) -> list[str]:
        """The numeric keys this trial reported (bookkeeping left out), in first-seen order."""
        seen: dict[str, None] = {}
        for h in self.history:
            for k, v in h.items():
                if (
                    k not in BOOKKEEPING
                    and k not in RAY_KEYS  # time_this_iter_s, pid: kept in the history, not metrics
                    and isinstance(v, (int, float))
                    and not isinstance(v, bool)
                ):
                    seen.setdefault(k, None)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "round": self.round,
            "params": self.params,
            "status": self.status.value,
            "epochs": self.epochs,
            "node": self.node,
            "history": self.history,
        }


def rank(trials: Sequence[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Trials with a score, best first: non-finite scores last; a trial that failed
    (:attr:`TrialStatus.ERROR`: it raised, or was stopped as hung) after every trial with a
    finite score that did not, whatever its last score (it is the best only when no trial ended
    without an error); ties: more epochs first."""
    s = sign(mode)

    def key(t: TrialRecord) -> tuple[bool, bool, float, int]:
        v = t.score(metric)
        value = -s * v if v is not None and math.isfinite(v) else math.inf
        return (value == math.inf, t.status is TrialStatus.ERROR, value, -t.epochs)

    return sorted((t for t in trials if t.score(metric) is not None), key=key)
