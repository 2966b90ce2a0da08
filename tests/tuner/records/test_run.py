"""``TrialRecord.score_at``: what it returns, and that asking for every epoch of a long history
reads it once, not once an epoch (the report asks for every epoch of every trial)."""

from __future__ import annotations

from typing import Any

from tuner.records import TrialStatus
from tuner.records.run import TrialRecord


class CountingRow(dict[str, Any]):
    """A history row that counts every ``row[key]`` read."""

    reads = 0

    def __getitem__(self, key: str) -> Any:
        CountingRow.reads += 1
        return super().__getitem__(key)


def trial(history: list[dict[str, Any]]) -> TrialRecord:
    return TrialRecord("t1", 0, {}, history, TrialStatus.FINISHED)


def test_score_at_takes_the_last_report_of_an_epoch_and_none_where_there_is_none() -> None:
    t = trial(
        [
            {"epoch": 1, "val_acc": 0.5},
            {"epoch": 2, "val_acc": 0.6},
            {"epoch": 2, "val_acc": 0.7},  # a restored trial reports epoch 2 again: the later one counts
            {"epoch": 3, "val_acc": True},  # not a number
            {"epoch": 4},
        ]
    )
    assert t.score_at("val_acc", 1) == 0.5
    assert t.score_at("val_acc", 2) == 0.7
    assert t.score_at("val_acc", 3) is None
    assert t.score_at("val_acc", 4) is None
    assert t.score_at("val_acc", 5) is None
    assert t.score_at("val_acc", None) is None  # the last report has none
    assert t.score("val_acc") is None
    assert trial([]).score_at("val_acc", 1) is None


def test_score_at_follows_a_history_that_grows_or_is_replaced() -> None:
    t = trial([{"epoch": 1, "val_acc": 0.5}])
    assert t.score_at("val_acc", 2) is None
    t.history.append({"epoch": 2, "val_acc": 0.6})
    assert t.score_at("val_acc", 2) == 0.6
    t.history = [{"epoch": 2, "val_acc": 0.9}]
    assert t.score_at("val_acc", 2) == 0.9
    assert t.score_at("val_acc", 1) is None


def test_every_epoch_of_a_long_history_reads_each_row_a_bounded_number_of_times() -> None:
    n = 2000
    t = trial([CountingRow(epoch=e, val_acc=e / n) for e in range(1, n + 1)])
    CountingRow.reads = 0
    assert [t.score_at("val_acc", e) for e in range(1, n + 1)] == [e / n for e in range(1, n + 1)]
    assert CountingRow.reads <= 2 * n  # a scan per epoch: n * n = 4 million reads


def test_the_record_equals_and_shows_as_before_once_indexed() -> None:
    a, b = trial([{"epoch": 1, "val_acc": 0.5}]), trial([{"epoch": 1, "val_acc": 0.5}])
    a.score_at("val_acc", 1)
    assert a == b
    assert repr(a) == repr(b)
    assert "_index" not in a.to_dict()
