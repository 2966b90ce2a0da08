"""The export file and the retests recorded in it and beside it (checked against their schema
by :mod:`tuner.records.export_schema`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tuner.errors import InputError
from tuner.records import now
from tuner.records.export_schema import check_export, check_retest
from tuner.records.fields import Fields, plain

# -- the export file --------------------------------------------------------------------------


@dataclass
class Stats:
    """Mean, sample standard deviation and 95% interval of the mean over seeds (the
    interval is None below two seeds)."""

    mean: float
    std: float
    ci95: list[float] | None
    scores: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, f: Fields) -> Stats:
        ci = f.get("ci95", list, None, nullable=True)
        if ci is not None and (len(ci) != 2 or not all(isinstance(x, (int, float)) or x is None for x in ci)):
            raise InputError(f"{f.source}: {f.where('ci95')}: must be [low, high]")
        scores = f.get("scores", list, [])
        return cls(
            mean=_num(f.get("mean", (int, float), nullable=True)),
            std=_num(f.number("std", 0.0, True)),
            ci95=None if ci is None else [_num(x) for x in ci],
            scores=[_num(x) for x in scores if isinstance(x, (int, float)) or x is None],
        )


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


@dataclass
class TopEntry:
    """One of an export's best k: its searched values and where it came from."""

    params: dict[str, Any]
    score: float | None
    trial: str | None = None
    round: int = 0
    epochs: int = 0
    status: str = ""
    error: str | None = None  # the one-line error of a trial that failed (status error)
    retest: dict[str, Any] | None = None  # {val: stats, test: {metric: stats}} once re-tested
    metrics: dict[str, float | None] = field(default_factory=dict)  # every metric of its last report

    @classmethod
    def from_dict(cls, f: Fields) -> TopEntry:
        metrics = Fields(f.get("metrics", dict, {}), f.source, f.where("metrics"))
        return cls(
            params=f.get("params", dict),
            score=f.number("score", None, True),
            trial=None if f.data.get("trial") is None else str(f.get("trial", (str, int))),
            round=f.get("round", int, 0),
            epochs=f.get("epochs", int, 0),
            status=f.get("status", str, ""),
            error=f.get("error", str, None, nullable=True),
            retest=f.get("retest", dict, None, nullable=True),
            metrics={str(k): metrics.number(k, None, True) for k in list(metrics.data)[:1000]},
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k.name: getattr(self, k.name) for k in fields(self)}
        for key in ("error", "retest"):
            if out[key] is None:
                del out[key]
        if not out["metrics"]:
            del out["metrics"]
        return out


@dataclass
class Export:
    """The export file: the best configuration of a run, re-runnable and re-trainable."""

    metric: str
    mode: str
    score: float | None
    params: dict[str, Any]
    config: dict[str, Any]  # the whole resolved sweep with params applied: itself a sweep file
    top: list[TopEntry]
    provenance: dict[str, Any] = field(default_factory=dict)
    retest: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Export:
        """An export from its parsed file, checked against the schema (:func:`check_export`).

        Raises:
            InputError: every problem, each naming the file, the key path, the value and the rule.
        """
        problems = check_export(data, source)
        if problems:
            raise InputError(problems)
        f = Fields(data, source)
        mode = f.get("mode", str)
        metric = f.get("metric", str)
        top = [TopEntry.from_dict(t) for t in f.items("top", [])]
        return cls(
            metric=metric,
            mode=mode,
            score=f.number("score", None, True),
            params=f.get("params", dict),
            config=f.get("config", dict),
            top=top,
            provenance=f.get("provenance", dict, {}),
            retest=f.get("retest", dict, None, nullable=True),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "mode": self.mode,
            "score": self.score,
            "params": self.params,
            "config": self.config,
            "top": [t.to_dict() for t in self.top],
            "provenance": self.provenance,
        }
        if self.retest is not None:
            out["retest"] = self.retest
        return out


# -- retests ----------------------------------------------------------------------------------


@dataclass
class RetestResult:
    """One re-tested configuration: the sweep's metric and every ``test_*`` metric over seeds."""

    trial: str | None
    params: dict[str, Any]
    search_score: float | None
    val: Stats  # the sweep's metric on the validation split
    test: dict[str, Stats]  # each test_* metric the function reported
    diverged: int = 0  # seeds whose training diverged
    seconds: float = 0.0

    @classmethod
    def from_dict(cls, f: Fields) -> RetestResult:
        test = f.get("test", dict, {})
        return cls(
            trial=None if f.data.get("trial") is None else str(f.get("trial", (str, int))),
            params=f.get("params", dict),
            search_score=f.number("search_score", None, True),
            val=Stats.from_dict(f.sub("val")),
            test={str(k): Stats.from_dict(Fields(v, f.source, f"{f.where('test')}.{k}")) for k, v in test.items()},
            diverged=f.get("diverged", int, 0),
            seconds=f.number("seconds", 0.0) or 0.0,
        )


@dataclass
class RetestEntry:
    """One retest of an export: the ranking over fresh seeds and its verdicts."""

    metric: str
    mode: str
    seeds: list[int]
    results: list[RetestResult]  # best first
    ranking_changed: bool = False
    drift: bool = False
    tolerance: float = 0.0
    messages: list[str] = field(default_factory=list)
    created: str = field(default_factory=now)
    seconds: float = 0.0
    top_k: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # {overrides, fingerprint}

    @classmethod
    def from_dict(cls, data: Any, source: str, prefix: str = "") -> RetestEntry:
        """One retest from its parsed form, checked against the schema (:func:`check_retest`).

        Raises:
            InputError: every problem, each naming the file, the key path, the value and the rule.
        """
        problems = check_retest(data, source, prefix)
        if problems:
            raise InputError(problems)
        f = Fields(data, source, prefix)
        results = [RetestResult.from_dict(r) for r in f.items("results")]
        return cls(
            metric=f.get("metric", str, ""),
            mode=f.get("mode", str, "max"),
            seeds=f.get("seeds", list, []),
            results=results,
            ranking_changed=f.get("ranking_changed", bool, False),
            drift=f.get("drift", bool, False),
            tolerance=f.number("tolerance", 0.0) or 0.0,
            messages=[str(m) for m in f.get("messages", list, [])],
            created=f.get("created", str, ""),
            seconds=f.number("seconds", 0.0) or 0.0,
            top_k=f.get("top_k", int, len(results)),
            data=f.get("data", dict, {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))  # type: ignore[no-any-return]
