"""Where the time went: each trial's span on its worker, from Ray's clock stamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuner.fake_run import epochs
from tests.tuner.report.runs import EPOCH_S, GAP_S, START_S, mixed_run, write_run
from tuner.report import timeline
from tuner.report.context import Context
from tuner.report.figure import best_label
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_segments_lie_on_their_workers_one_after_another(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    tl = timeline.timeline(ctx)
    by_trial = {s.trial: s for s in tl.segments}
    assert len(by_trial) == 6
    # trial 0 on worker 1000 starts 5.3 s after the run was created; whole-second stamps give it to within a second
    assert by_trial["abcde_00000"].start == pytest.approx(START_S, abs=1.0)
    assert by_trial["abcde_00000"].end - by_trial["abcde_00000"].start == pytest.approx(4 * EPOCH_S)
    assert [w for w, _ in [(s.worker, 0) for s in tl.segments]].count("1000") == 3
    assert [lane[0].worker for _, lane in tl.lanes] == ["1000", "1001"]
    for _, lane in tl.lanes:
        for a, b in zip(lane, lane[1:]):
            assert a.end <= b.start + 1e-9  # one trial at a time on a worker
    # trial 2 follows trial 0 on worker 1000 after a gap
    assert by_trial["abcde_00002"].start - by_trial["abcde_00000"].end == pytest.approx(GAP_S, abs=1.0)
    assert by_trial["abcde_00000"].reports[0][1] == pytest.approx(by_trial["abcde_00000"].start + EPOCH_S)
    assert tl.slots == 2 and tl.slots_why == "2 CPUs ÷ 1 CPU a trial"
    assert tl.utilisation() == pytest.approx(tl.busy / (2 * tl.span))
    assert tl.busy == pytest.approx(sum(len(t.history) for t in ctx.run.trials) * EPOCH_S)
    text = timeline.summary(tl)
    assert "6 trials ran 14.0 trial-seconds" in text and "on 2 slot(s) (2 CPUs ÷ 1 CPU a trial)" in text


def test_the_figure_has_a_lane_per_worker_and_the_best_outlined(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    tl = timeline.timeline(ctx)
    fig = timeline.draw(ctx, tl)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["node-aaa · pid 1000", "node-aaa · pid 1001"]
    assert ax.get_xlabel() == "seconds since the run was created" and ax.get_xlim()[0] == 0
    best = [c for c in ax.collections if c.get_label() == best_label("abcde_00004")]
    assert len(best) == 1
    (x0, y0), *_ = best[0].get_paths()[0].vertices
    assert x0 == pytest.approx(next(s.start for s in tl.segments if s.trial == "abcde_00004"))
    bars = [c for c in ax.collections if not c.get_label().startswith("_")]
    assert len(bars) == 6  # one a trial segment; the idle lanes carry no label
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "idle" in legend and "diverged" in legend and "failed" in legend


def test_a_restored_trial_is_a_new_segment_and_no_clock_is_no_timeline(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    result = next(run_dir.glob("round-0/*/result.json"))
    import json

    rows = [json.loads(line) for line in result.read_text().splitlines()]
    rows[2]["timestamp"] += 30  # restored 30 s later: its time_total_s goes on, its clock does not
    result.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    tl = timeline.timeline(context(run_dir))
    assert len(tl.segments) == 2 and tl.segments[1].start - tl.segments[0].end == pytest.approx(30, abs=1.0)
    assert tl.segments[1].end - tl.segments[1].start == pytest.approx(EPOCH_S)
    bare = write_run(tmp_path / "bare", [({"train.lr": 0.1}, epochs(0.5))], clock=False)
    tl, drawn = timeline.figures(context(bare))
    assert tl.segments == [] and drawn == []
