from __future__ import annotations

from tuner.progress import Progress, TrialEvent, classify


def ev(i: int, status: str, **last: object) -> TrialEvent:
    return TrialEvent(f"t{i}", status, {}, dict(last))


def test_classify() -> None:
    assert classify("TERMINATED", {"epoch": 5}, 5) == "finished"
    assert classify("TERMINATED", {"epoch": 2}, 5) == "stopped"
    assert classify("TERMINATED", {"epoch": 1, "diverged": True}, 5) == "diverged"
    assert classify("ERROR", {}, 5) == "error"
    assert classify("RUNNING", {"epoch": 1}, 5) == "running"
    assert classify("PENDING", {}, 5) == "pending"


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
        "round 1/1 | 1 running, 1 pending, 1 finished, 1 stopped early, 1 diverged, 0 errors | best val_acc 0.8000 (t2)"
    )


def test_min_mode_best() -> None:
    p = Progress("val_loss", "min", 5, write=lambda _: None)
    assert p.best([ev(0, "RUNNING", val_loss=0.3), ev(1, "RUNNING", val_loss=0.1)]) == (0.1, "t1")
    assert p.best([ev(0, "PENDING")]) is None
