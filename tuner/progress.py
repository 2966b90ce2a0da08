"""What a user sees while a sweep runs: a live bar on a terminal, a plain line elsewhere.

On a terminal (drawn by tqdm, refreshed about once a second)::

    round 1/2  37%|██████▍           | 240/650 epochs [00:14, 17.1 epochs/s, ETA ≤ 41s]
      2 running, 20 pending, 3 finished, 7 stopped early, 0 diverged, 0 errors | best val_acc 0.6512 (a1b2c_00003)

Elsewhere (CI, a pipe, a notebook) a line every few seconds, when something changed::

    [  14s] round 1/2 | 240/650 epochs, 17.1/s, ETA ≤ 41s | 2 running, 20 pending, ... | best val_acc 0.6512 (...)

The bar counts the epochs trained against the sweep's budget: every trial of every round at
its full budget (``max_t``), except that a trial that ended (stopped early by ASHA, diverged or
failed) counts only the epochs it trained. With ASHA the budget shrinks as trials are stopped,
so the ETA -- the remaining budget over the epoch rate of the last minute -- is an upper bound
and says so (``≤``). A function with no stated budget (no ``max_t``) gets a count and a rate,
no ETA. "Stopped early" is a trial ASHA did not promote to its next rung; "finished" ran its
full budget; "interrupted" (the last line after a Ctrl-C, when there are any) a trial that was
running then, which ``tuner resume`` continues.
"""

from __future__ import annotations

import builtins
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tuner.errors import printable

# The bar is redrawn this often (the callback that feeds it is throttled to this).
BAR_EVERY_S = 1.0
# The epoch rate is measured over this much of the recent past (workers come and go).
RATE_WINDOW_S = 60.0
# Without a terminal, a line whose only news is more epochs is printed this often at most.
HEARTBEAT_S = 30.0
STATES = ("running", "pending", "finished", "stopped", "diverged", "error", "interrupted")
# tuner's status of a trial an interrupt (Ctrl-C) left running: Tune marks it TERMINATED, but it
# did not end (``tuner resume`` continues it); :class:`tuner.ray.callbacks.ProgressCallback` tells it.
INTERRUPTED = "INTERRUPTED"


@dataclass
class TrialEvent:
    """What the progress sees of one trial."""

    trial_id: str
    status: str  # PENDING | RUNNING | PAUSED | TERMINATED | ERROR, or INTERRUPTED (tuner's)
    config: dict[str, Any]
    last_result: dict[str, Any]

    def epochs(self) -> int:
        """Epochs trained (its last report's ``epoch``)."""
        v = self.last_result.get("epoch") or self.last_result.get("training_iteration") or 0
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0


def classify(status: str, last: dict[str, Any], max_t: int | None) -> str:
    """pending | running | finished | stopped | diverged | error | interrupted."""
    if status == "ERROR":
        return "error"
    if last.get("diverged"):
        return "diverged"
    if status == INTERRUPTED:
        return "interrupted"
    if status == "TERMINATED":
        return "finished" if max_t is None or int(last.get("epoch", 0)) >= max_t else "stopped"
    if status in ("RUNNING", "PAUSED"):
        return "running"
    return "pending"


class Console:
    """Where a run's lines go, callable like ``print``: ``stream``, or nowhere (None). On a
    terminal, :class:`Progress` draws its live bar on the same stream."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        if self.stream is not None:  # a path or name with a newline or an escape prints as escapes
            print(printable(line), file=self.stream, flush=True)


def stream_of(write: Callable[[str], None]) -> TextIO | None:
    """The stream ``write`` prints to: a :class:`Console`'s, stdout for ``print``, else None
    (a function of the caller's: lines only)."""
    if write is builtins.print:
        return sys.stdout
    return getattr(write, "stream", None)


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False


def duration(seconds: float) -> str:
    """``41s``, ``3m05s``, ``1h02m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Snapshot:
    """The sweep at one moment: what the bar and the line show."""

    label: str
    counts: dict[str, int]
    trained: int  # epochs trained by every trial so far
    total: int | None  # the sweep's budget in epochs (None: no max_t)
    best: tuple[float, str] | None
    waiting: bool  # no trial running or ended yet (Ray is starting the workers)
    num_trials: int  # trials the first round starts


class Rate:
    """Epochs a second over the last :data:`RATE_WINDOW_S` (differences, so epochs restored
    from a resumed run's past do not count as fast ones)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, trained: int) -> None:
        self._samples.append((t, trained))
        # keep one sample at or before the window's start, so the window is covered
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_s:
            self._samples.popleft()

    def per_s(self) -> float | None:
        """None until some time has passed with epochs trained in it."""
        if len(self._samples) < 2:
            return None
        (t0, e0), (t1, e1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 1.0 or e1 <= e0:
            return None
        return (e1 - e0) / (t1 - t0)


class Progress:
    """A sweep's progress: fed its trials by :meth:`update` (from
    :class:`tuner.ray.callbacks.ProgressCallback`), shown as a live bar when ``write`` prints
    to a terminal (see :func:`stream_of`), else as lines through ``write``.

    Args:
        metric, mode: the sweep's.
        max_t: a trial's full budget in epochs (None: none stated; no budget, no ETA).
        label: what the running part is called (``round 1/2``; set as rounds start).
        write: where lines go.
        rounds: each round's number of trials: those not handed out yet count at full budget
            (default: the trials seen so far are all there are).
        asha: whether trials may be stopped early (the ETA is then an upper bound).
        bar: force the bar on or off (None: on when ``write`` prints to a terminal).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        max_t: int | None,
        label: str = "",
        write: Callable[[str], None] = print,
        rounds: Sequence[int] = (),
        asha: bool = False,
        bar: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metric, self.mode, self.max_t, self.label, self.write = metric, mode, max_t, label, write
        self.rounds, self.asha, self.clock = list(rounds), asha, clock
        self.round = 0  # the round the experiment starts at (a resumed run's: the one it was in)
        self.stream = stream_of(write)
        self.bar = is_terminal(self.stream) if bar is None else bar and self.stream is not None
        self.began = clock()
        self.rate = Rate()
        self._key: tuple[Any, ...] | None = None
        self._printed_at = -math.inf
        self._trained_at_print = -1
        self._bars: tuple[Any, Any] | None = None

    # -- feeding -------------------------------------------------------------------------------

    def interval(self, every_s: float) -> float:
        """How often the callback should call :meth:`update`: ``every_s``, or often enough
        for a live bar."""
        return min(every_s, BAR_EVERY_S) if self.bar else every_s

    def start(self) -> None:
        """The sweep begins: say what it waits for (its workers)."""
        self.update([])

    def say(self, line: str) -> None:
        """Print ``line`` above the live bar (or as a line when there is none)."""
        if self._bars is None:
            self.write(line)
            return
        from tqdm import tqdm

        tqdm.write(printable(line), file=self.stream)

    def update(self, events: list[TrialEvent]) -> None:
        """Show the sweep's trials as they are now."""
        now = self.clock()
        snap = self.snapshot(events)
        if events:  # a resumed run's first events bring its past epochs: a baseline, not a rate
            self.rate.add(now, snap.trained)
        if self.bar:
            self._draw(snap)
        else:
            self._line(snap, now)

    def close(self) -> None:
        """Take the live bar down and leave its last state as two plain lines."""
        if self._bars is None:
            return
        bars, self._bars = self._bars, None
        last = [str(b) for b in bars]
        for b in reversed(bars):  # tqdm leaves closed bars in an order of its own: clear them
            b.leave = False
            b.close()
        for line in last:
            self.write(line)

    # -- what is shown -------------------------------------------------------------------------

    def best(self, events: list[TrialEvent]) -> tuple[float, str] | None:
        """The best finite score so far and its trial; a trial that failed only when every
        scored trial failed (as :func:`tuner.records.rank` ranks them)."""
        sign = 1.0 if self.mode == "max" else -1.0
        scored = []
        for e in events:
            v = e.last_result.get(self.metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not e.last_result.get("diverged"):
                if math.isfinite(float(v)):
                    scored.append((e.status != "ERROR", float(v), e.trial_id))
        best = max(scored, key=lambda s: (s[0], sign * s[1])) if scored else None
        return None if best is None else (best[1], best[2])

    def snapshot(self, events: list[TrialEvent]) -> Snapshot:
        counts = dict.fromkeys(STATES, 0)
        trained = budget = 0
        for e in events:
            state = classify(e.status, e.last_result, self.max_t)
            counts[state] += 1
            epochs = e.epochs()
            trained += epochs
            ended = state in ("finished", "stopped", "diverged", "error")
            budget += epochs if ended or self.max_t is None else max(self.max_t, epochs)
        planned = max(sum(self.rounds), len(events))  # trials the searcher has yet to hand out count in full
        total = None if self.max_t is None else budget + (planned - len(events)) * self.max_t
        waiting = counts["running"] == 0 and not any(counts[s] for s in STATES if s not in ("running", "pending"))
        first = self.rounds[min(self.round, len(self.rounds) - 1)] if self.rounds else len(events)
        return Snapshot(self.label, counts, trained, total, self.best(events), waiting, max(first, len(events)))

    def eta(self, snap: Snapshot) -> float | None:
        """Seconds left at the measured rate (None: no budget, or no rate yet)."""
        rate = self.rate.per_s()
        if snap.total is None or rate is None:
            return None
        return max(0, snap.total - snap.trained) / rate

    def status(self, snap: Snapshot) -> str:
        """Trials by state and the best so far (or what the round waits for)."""
        if snap.waiting:
            return f"waiting for workers: 0 of {snap.num_trials} trials running yet"
        c = snap.counts
        best = f"best {self.metric} {snap.best[0]:.4f} ({snap.best[1]})" if snap.best else f"best {self.metric} -"
        return (
            f"{c['running']} running, {c['pending']} pending, {c['finished']} finished, {c['stopped']} stopped early, "
            f"{c['diverged']} diverged, {c['error']} errors"
            + (f", {c['interrupted']} interrupted" if c["interrupted"] else "")
            + f" | {best}"
        )

    def budget_text(self, snap: Snapshot) -> str:
        """``240/650 epochs, 17.1/s, ETA ≤ 41s`` (the parts known so far)."""
        parts = [f"{snap.trained}/{snap.total} epochs" if snap.total is not None else f"{snap.trained} epochs"]
        rate = self.rate.per_s()
        if rate is not None:
            parts.append(f"{rate:.3g}/s")
        eta = self.eta(snap)
        if eta is not None:
            parts.append(f"ETA {'≤ ' if self.asha else ''}{duration(eta)}")
        return ", ".join(parts)

    def line(self, events: list[TrialEvent]) -> str:
        """The plain line for ``events`` (without its time stamp)."""
        return self._text(self.snapshot(events))

    def _text(self, snap: Snapshot) -> str:
        return " | ".join(p for p in (snap.label, self.budget_text(snap), self.status(snap)) if p)

    # -- drawing -------------------------------------------------------------------------------

    def _line(self, snap: Snapshot, now: float) -> None:
        # printed when the trials' states or the best changed, or (a heartbeat with the ETA)
        # when epochs were trained and the last line is a while old
        key = (snap.label, self.status(snap))
        news = key != self._key or (snap.trained != self._trained_at_print and now - self._printed_at >= HEARTBEAT_S)
        if not news:
            return
        self._key, self._printed_at, self._trained_at_print = key, now, snap.trained
        self.write(f"[{now - self.began:5.0f}s] {self._text(snap)}")

    def _draw(self, snap: Snapshot) -> None:
        from tqdm import tqdm

        if self._bars is None:
            counted = "{n_fmt}/{total_fmt} epochs" if snap.total is not None else "{n_fmt} epochs"
            shape = "{desc}{percentage:3.0f}%|{bar}| " if snap.total is not None else "{desc}"
            common = {"file": self.stream, "dynamic_ncols": True, "leave": True}
            bar = tqdm(
                total=snap.total,
                initial=snap.trained,
                bar_format=shape + counted + " [{elapsed}{postfix}]",
                position=0,
                desc=self._desc(snap),
                **common,
            )
            status = tqdm(total=0, bar_format="{desc}", position=1, desc=self._status_text(snap), **common)
            self._bars = (bar, status)
        bar, status = self._bars
        bar.total = snap.total
        bar.n = snap.trained
        bar.set_description_str(self._desc(snap), refresh=False)
        rate = self.rate.per_s()
        eta = self.eta(snap)
        post = [f"{rate:.3g} epochs/s" if rate is not None else ""]
        if snap.total is not None:
            post.append(f"ETA {'≤ ' if self.asha else ''}{duration(eta)}" if eta is not None else "ETA -")
        bar.set_postfix_str(", ".join(p for p in post if p), refresh=False)
        status.set_description_str(self._status_text(snap), refresh=False)
        bar.refresh()
        status.refresh()

    def _desc(self, snap: Snapshot) -> str:
        return f"{snap.label}  " if snap.label else ""

    def _status_text(self, snap: Snapshot) -> str:
        return "  " + self.status(snap)
