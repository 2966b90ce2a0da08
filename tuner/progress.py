"""Readable progress while a sweep runs: one line every few seconds instead of Ray's tables.

    [  14s] round 1/2 | 2 running, 20 pending, 3 finished, 7 stopped early, 0 diverged | best val_acc 0.6512

"Stopped early" is a trial ASHA did not promote to its next rung; "finished" ran its full
budget. The line is printed when something changed since the last one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class TrialEvent:
    """What the progress line sees of one trial."""

    trial_id: str
    status: str  # PENDING | RUNNING | PAUSED | TERMINATED | ERROR
    config: dict[str, Any]
    last_result: dict[str, Any]


def classify(status: str, last: dict[str, Any], max_t: int | None) -> str:
    """pending | running | finished | stopped | diverged | error."""
    if status == "ERROR":
        return "error"
    if last.get("diverged"):
        return "diverged"
    if status == "TERMINATED":
        return "finished" if max_t is None or int(last.get("epoch", 0)) >= max_t else "stopped"
    if status in ("RUNNING", "PAUSED"):
        return "running"
    return "pending"


class Progress:
    """Turns trial events into progress lines (see the module docstring)."""

    def __init__(
        self, metric: str, mode: str, max_t: int | None, label: str = "", write: Callable[[str], None] = print
    ) -> None:
        self.metric, self.mode, self.max_t, self.label, self.write = metric, mode, max_t, label, write
        self.start = time.monotonic()
        self._last_line = ""

    def best(self, events: list[TrialEvent]) -> tuple[float, str] | None:
        sign = 1.0 if self.mode == "max" else -1.0
        scored = [
            (float(e.last_result[self.metric]), e.trial_id)
            for e in events
            if self.metric in e.last_result
            and not e.last_result.get("diverged")
            and math.isfinite(float(e.last_result[self.metric]))
        ]
        return max(scored, key=lambda s: sign * s[0]) if scored else None

    def line(self, events: list[TrialEvent]) -> str:
        counts = {k: 0 for k in ("running", "pending", "finished", "stopped", "diverged", "error")}
        for e in events:
            counts[classify(e.status, e.last_result, self.max_t)] += 1
        best = self.best(events)
        best_text = f"best {self.metric} {best[0]:.4f} ({best[1]})" if best else f"best {self.metric} -"
        label = f"{self.label} | " if self.label else ""
        return (
            f"{label}{counts['running']} running, {counts['pending']} pending, {counts['finished']} finished, "
            f"{counts['stopped']} stopped early, {counts['diverged']} diverged, {counts['error']} errors | {best_text}"
        )

    def update(self, events: list[TrialEvent]) -> None:
        text = self.line(events)
        if text != self._last_line:
            self._last_line = text
            self.write(f"[{time.monotonic() - self.start:5.0f}s] {text}")
