"""The live progress: budget, rate and ETA, the plain lines, and the bar on a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from tuner.progress import Console, Progress, Rate, TrialEvent, classify, duration, stream_of


def ev(i: int, status: str, **last: object) -> TrialEvent:
    return TrialEvent(f"t{i}", status, {}, dict(last))


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_classify() -> None:
    assert classify("TERMINATED", {"epoch": 5}, 5) == "finished"
    assert classify("TERMINATED", {"epoch": 2}, 5) == "stopped"
    assert classify("TERMINATED", {"epoch": 1, "diverged": True}, 5) == "diverged"
    assert classify("ERROR", {}, 5) == "error"
    assert classify("RUNNING", {"epoch": 1}, 5) == "running"
    assert classify("PENDING", {}, 5) == "pending"
    assert classify("INTERRUPTED", {"epoch": 2}, 5) == "interrupted"  # a Ctrl-C left it running
    assert classify("TERMINATED", {"epoch": 3}, None) == "finished"  # no stated budget: it ran until it returned


def test_a_line_is_printed_only_when_something_changed() -> None:
    lines: list[str] = []
    p = Progress("val_acc", "max", 5, label="round 1/1", write=lines.append)
    events = [
        ev(0, "TERMINATED", epoch=5, val_acc=0.7),
        ev(1, "TERMINATED", epoch=1, val_acc=0.9, diverged=True),
        ev(2, "RUNNING", epoch=2, val_acc=0.8),
        ev(3, "PENDING"),
        ev(4, "TERMINATED", epoch=2, val_acc=0.5),
    ]
    p.update(events)
    p.update(events)
    assert len(lines) == 1
    assert lines[0].endswith(
        "round 1/1 | 10/18 epochs | 1 running, 1 pending, 1 finished, 1 stopped early, 1 diverged, 0 errors "
        "| best val_acc 0.8000 (t2)"
    )


def test_min_mode_best() -> None:
    p = Progress("val_loss", "min", 5, write=lambda _: None)
    assert p.best([ev(0, "RUNNING", val_loss=0.3), ev(1, "RUNNING", val_loss=0.1)]) == (0.1, "t1")
    assert p.best([ev(0, "PENDING")]) is None
    assert p.best([ev(0, "RUNNING", val_loss=float("nan"))]) is None


def test_the_budget_counts_every_planned_trial_at_full_budget_and_an_ended_one_at_what_it_trained() -> None:
    # 2 rounds of 4 and 2 trials, max_t 10: 60 epochs at most
    p = Progress("val_acc", "max", 10, write=lambda _: None, rounds=[4, 2], asha=True)
    assert p.snapshot([]).total == 60
    events = [
        ev(0, "TERMINATED", epoch=10, val_acc=0.9),  # finished: 10
        ev(1, "TERMINATED", epoch=1, val_acc=0.1),  # stopped by ASHA at 1: its budget is 1
        ev(2, "ERROR", epoch=3),  # failed at 3: 3
        ev(3, "RUNNING", epoch=4, val_acc=0.5),  # running: 10
    ]  # and 2 trials of round 2 not handed out yet: 20
    snap = p.snapshot(events)
    assert (snap.trained, snap.total) == (18, 44)
    assert snap.counts == {
        "running": 1,
        "pending": 0,
        "finished": 1,
        "stopped": 1,
        "diverged": 0,
        "error": 1,
        "interrupted": 0,
    }


def test_eta_is_the_remaining_budget_over_the_rate_of_the_last_minute() -> None:
    clock = Clock()
    lines: list[str] = []
    p = Progress("val_acc", "max", 10, write=lines.append, rounds=[10], asha=True, clock=clock)
    p.update([ev(i, "RUNNING", epoch=0) for i in range(10)])
    assert p.eta(p.snapshot([])) is None  # no rate yet
    clock.t += 10
    events = [ev(i, "RUNNING", epoch=2, val_acc=0.5) for i in range(10)]  # 20 epochs in 10 s
    p.update(events)
    assert p.rate.per_s() == pytest.approx(2.0)
    assert p.eta(p.snapshot(events)) == pytest.approx(40.0)  # 80 epochs left at 2/s
    assert "20/100 epochs, 2/s, ETA ≤ 40s" in lines[-1]
    # an old fast start leaves the window: the rate is the recent one
    for _ in range(10):
        clock.t += 10
        p.update(events)  # nothing trained for 100 s
    assert p.rate.per_s() is None and p.eta(p.snapshot(events)) is None


def test_a_resumed_runs_past_epochs_are_a_baseline_not_a_rate() -> None:
    clock = Clock()
    p = Progress("val_acc", "max", 10, write=lambda _: None, rounds=[4], clock=clock)
    p.start()
    clock.t += 4  # the restored trials arrive with 15 epochs trained before the interruption
    p.update([ev(0, "TERMINATED", epoch=10, val_acc=0.9), ev(1, "RUNNING", epoch=5, val_acc=0.5)])
    assert p.rate.per_s() is None
    clock.t += 5
    p.update([ev(0, "TERMINATED", epoch=10, val_acc=0.9), ev(1, "RUNNING", epoch=7, val_acc=0.5)])
    assert p.rate.per_s() == pytest.approx(0.4)


def test_without_asha_the_eta_is_not_an_upper_bound_and_without_max_t_there_is_none() -> None:
    clock = Clock()
    fifo = Progress("val_acc", "max", 4, write=lambda _: None, rounds=[2], clock=clock)
    fifo.update([ev(0, "RUNNING", epoch=0), ev(1, "RUNNING", epoch=0)])
    clock.t += 4
    events = [ev(0, "RUNNING", epoch=2), ev(1, "RUNNING", epoch=2)]
    fifo.update(events)
    assert fifo.budget_text(fifo.snapshot(events)) == "4/8 epochs, 1/s, ETA 4s"
    # a user's function with no max_t (scheduler none): a count and a rate, never an ETA
    clock.t = 100.0
    free = Progress("val_rmse", "min", None, write=lambda _: None, rounds=[2], clock=clock)
    free.update([ev(0, "RUNNING", epoch=0)])
    clock.t += 4
    events = [ev(0, "RUNNING", epoch=4, val_rmse=1.0), ev(1, "TERMINATED", epoch=30, val_rmse=2.0)]
    free.update(events)
    snap = free.snapshot(events)
    assert snap.total is None and free.eta(snap) is None
    assert free.budget_text(snap) == "34 epochs, 8.5/s"


def test_the_start_says_what_it_waits_for() -> None:
    lines: list[str] = []
    p = Progress("val_acc", "max", 3, write=lines.append, rounds=[8, 4])
    p.label = "round 1/2"
    p.start()
    assert lines[-1].endswith("round 1/2 | 0/36 epochs | waiting for workers: 0 of 8 trials running yet")
    p.update([ev(i, "PENDING") for i in range(8)])  # Tune made the trials; no worker has started one
    assert len(lines) == 1
    p.update([ev(0, "RUNNING")] + [ev(i, "PENDING") for i in range(1, 8)])
    assert "1 running, 7 pending" in lines[-1]


def test_a_line_whose_only_news_is_more_epochs_waits_for_the_heartbeat() -> None:
    clock = Clock()
    lines: list[str] = []
    p = Progress("val_acc", "max", 100, write=lines.append, clock=clock)
    p.update([ev(0, "RUNNING", epoch=1, val_acc=0.5)])
    clock.t += 5
    p.update([ev(0, "RUNNING", epoch=2, val_acc=0.5)])
    assert len(lines) == 1
    clock.t += 30
    p.update([ev(0, "RUNNING", epoch=9, val_acc=0.5)])
    assert len(lines) == 2 and "9/100 epochs" in lines[-1]
    clock.t += 30
    p.update([ev(0, "RUNNING", epoch=9, val_acc=0.5)])  # nothing new at all
    assert len(lines) == 2


def test_rate_needs_time_and_epochs() -> None:
    r = Rate(window_s=60)
    r.add(0.0, 0)
    assert r.per_s() is None
    r.add(0.5, 10)
    assert r.per_s() is None  # under a second: no rate yet
    r.add(10.0, 20)
    assert r.per_s() == pytest.approx(2.0)
    r.add(100.0, 20)  # the window [40, 100] saw nothing trained
    r.add(101.0, 20)
    assert r.per_s() is None


def test_duration() -> None:
    assert [duration(s) for s in (0, 41.4, 185, 3720, -3)] == ["0s", "41s", "3m05s", "1h02m", "0s"]


def test_where_the_lines_go() -> None:
    out = io.StringIO()
    Console(out)("hello")
    Console(None)("nowhere")  # --quiet
    assert out.getvalue() == "hello\n"
    assert stream_of(print) is sys.stdout and stream_of(Console(out)) is out
    assert stream_of(lambda line: None) is None
    # a caller's own function or a stream that is not a terminal: lines, never a bar
    assert not Progress("val_acc", "max", 3, write=lambda _: None).bar
    assert not Progress("val_acc", "max", 3, write=Console(io.StringIO())).bar
    assert not Progress("val_acc", "max", 3, write=Console(None), bar=True).bar
    assert Progress("val_acc", "max", 3, write=Console(Tty())).bar
    assert Progress("val_acc", "max", 3, write=Console(Tty())).interval(5.0) == 1.0
    assert Progress("val_acc", "max", 3, write=lambda _: None).interval(5.0) == 5.0


def test_on_a_terminal_a_live_bar_is_drawn_and_left_as_two_lines() -> None:
    clock = Clock()
    tty = Tty()
    p = Progress("val_acc", "max", 4, write=Console(tty), rounds=[4], asha=True, clock=clock)
    p.label = "round 1/2"
    p.start()
    assert "waiting for workers: 0 of 4 trials running yet" in tty.getvalue()
    clock.t += 2
    p.update([ev(0, "RUNNING", epoch=2, val_acc=0.5), ev(1, "RUNNING", epoch=2, val_acc=0.25)])
    p.say("round 1/2 best val_acc 0.5")  # printed above the bar, which is redrawn
    clock.t += 2
    p.update([ev(0, "TERMINATED", epoch=4, val_acc=0.75), ev(1, "TERMINATED", epoch=2, val_acc=0.25)])
    p.close()
    p.close()  # twice is harmless
    screen = tty.getvalue()
    assert "\r" in screen  # redrawn in place
    last = [line for line in screen.replace("\r", "\n").splitlines() if line.strip()][-2:]
    assert last[0].startswith("round 1/2") and "6/14 epochs" in last[0] and "ETA ≤" in last[0]
    assert "1 finished, 1 stopped early" in last[1] and "best val_acc 0.7500 (t0)" in last[1]
    assert "round 1/2 best val_acc 0.5\n" in screen


def test_a_bar_without_a_budget_counts_epochs() -> None:
    tty = Tty()
    p = Progress("val_rmse", "min", None, write=Console(tty), bar=True)
    p.update([ev(0, "RUNNING", epoch=3, val_rmse=1.5)])
    p.close()
    assert "3 epochs" in tty.getvalue() and "ETA" not in tty.getvalue() and "%" not in tty.getvalue()


def test_a_resumed_run_waits_for_the_trials_of_the_round_it_was_in() -> None:
    lines: list[str] = []
    p = Progress("val_acc", "max", 3, write=lines.append, rounds=[3, 2, 2])
    p.label, p.round = "round 2/3", 1
    p.start()
    assert lines[-1].endswith("waiting for workers: 0 of 2 trials running yet"), lines[-1]


def test_a_failed_trial_is_the_best_so_far_only_when_every_scored_trial_failed() -> None:
    """A trial stopped as hung after one good report is not shown as the best while a trial
    that did not fail has a score (as the run directory ranks them)."""
    p = Progress("val_loss", "min", 5, write=lambda _: None)
    assert p.best([ev(0, "ERROR", val_loss=0.1), ev(1, "RUNNING", val_loss=0.3)]) == (0.3, "t1")
    assert p.best([ev(0, "ERROR", val_loss=0.1)]) == (0.1, "t0")
