"""What a finished run tells its user: the summary object and the lines printed at its end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuner import export_file as export_mod
from tuner.errors import without_ids
from tuner.records import TrialStatus
from tuner.results import RunDir
from tuner.rounds import fmt


@dataclass
class RunSummary:
    """What a finished sweep produced."""

    run_dir: Path  # the local run directory (a URI run's local mirror)
    export_path: Path | None
    run: RunDir
    wall_s: float
    location: str = ""  # the run directory as the user names it: the path, or the URI

    def __post_init__(self) -> None:
        self.location = self.location or str(self.run_dir)

    def __repr__(self) -> str:
        best = self.run.ranked()[:1]
        score = f", best {self.run.metric} {best[0].score(self.run.metric):.4g}" if best else ""
        return f"RunSummary({self.location!r}, {len(self.run.trials)} trials{score}, {self.wall_s:.0f}s)"

    @property
    def export_location(self) -> str | None:
        """Where the export is as the user names it: beside the run (the URI of a cloud run, where
        it was uploaded), or None when nothing was exported."""
        if self.export_path is None:
            return None
        if self.location == str(self.run_dir):
            return str(self.export_path)
        return f"{self.location.rstrip('/')}/{self.export_path.name}"

    @property
    def export_local_copy(self) -> str | None:
        """The local copy of a cloud run's export (in its mirror), else None."""
        if self.export_path is None or self.location == str(self.run_dir):
            return None
        return str(self.export_path)

    @property
    def export_line(self) -> str | None:
        """``exported best config: WHERE``, with a cloud run's local copy named as such."""
        if self.export_location is None:
            return None
        copy = self.export_local_copy
        return f"exported best config: {self.export_location}" + (f" (local copy: {copy})" if copy else "")

    def lines(self, top: int = 5) -> list[str]:
        """The lines printed when a run ends: counts, the best trials, where things are."""
        return describe(self, top)


def failures(run: RunDir) -> list[str]:
    """The first error of each distinct kind among the run's failed trials, with how many had it."""
    kinds: dict[str, tuple[str, list[str]]] = {}  # the same error whatever ids it names: its first line, trials
    for t in run.trials:
        if t.status == TrialStatus.ERROR and t.error:
            kinds.setdefault(without_ids(t.error), (t.error, []))[1].append(t.trial_id)
    return [
        f"{len(ids)} trial{'s' if len(ids) > 1 else ''} ({ids[0]}{', ...' if len(ids) > 1 else ''}): {error}"
        for error, ids in kinds.values()
    ]


def describe(summary: RunSummary, top: int = 5) -> list[str]:
    """The lines printed when a run ends: counts, the best trials, where things are."""
    run = summary.run
    counts: dict[str, int] = {}
    for t in run.trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    epochs = sum(t.epochs for t in run.trials)
    budget = run.sweep.max_t
    trained = f", {epochs} of {len(run.trials) * budget} epochs trained" if budget else f", {epochs} epochs trained"
    lines = [
        f"done in {summary.wall_s:.0f}s: {len(run.trials)} trials ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f"){trained}"
    ]
    ranked = run.ranked()
    if ranked:
        lines.append(f"best {run.metric} {ranked[0].score(run.metric):.4f} (trial {ranked[0].trial_id}):")
        for k, v in export_mod.ordered(ranked[0].params, run.sweep).items():
            lines.append(f"  {k}: {fmt(v)}")
        lines.append(f"top {min(top, len(ranked))}:")
        for t in ranked[:top]:
            params = ", ".join(
                f"{k.split('.')[-1]}={fmt(v)}" for k, v in export_mod.ordered(t.params, run.sweep).items()
            )
            lines.append(f"  {t.score(run.metric):.4f}  {t.status.value:<8} {t.epochs:>3} ep  {params}")
    if run.meta.failures:
        lines.append(f"{sum(t.status == TrialStatus.ERROR for t in run.trials)} trials failed:")
        lines += [f"  {f}" for f in run.meta.failures]
    lines.append(f"run directory: {summary.location}")
    if summary.export_line:
        lines.append(summary.export_line)
    return lines
