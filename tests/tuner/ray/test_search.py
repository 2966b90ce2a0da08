"""The searcher runs every round in one experiment: it waits for a round to end, narrows the
ranges on each parameter's scale, and picks up where it was after a restore."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from ray.tune.search import Searcher

from tuner.ray.search import RoundSampler, RoundSearcher, sample
from tuner.records import ROUND_KEY
from tuner.space import Parameter

LR = Parameter("train.lr", "log_uniform", 1e-4, 1.0)
BETA = Parameter("train.momentum", "one_minus_log_uniform", 0.5, 0.999)


def score(config: dict[str, Any]) -> float:
    """Best at lr 1e-2 and 1 - β = 1e-2, on the log scales."""
    return -((math.log10(config["train.lr"]) + 2) ** 2 + (math.log10(1 - config["train.momentum"]) + 2) ** 2)


def drive(s: RoundSearcher, concurrency: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """Play Tune: keep ``concurrency`` trials running, finish the oldest each step, until the
    searcher is finished; returns every trial handed out, in order."""
    handed: list[tuple[str, dict[str, Any]]] = []
    running: list[tuple[str, dict[str, Any]]] = []
    n = 0
    for _ in range(10_000):
        while len(running) < concurrency:
            config = s.suggest(f"t{n}")
            if config is None or config == Searcher.FINISHED:
                break
            handed.append((f"t{n}", config))
            running.append((f"t{n}", config))
            n += 1
        if config == Searcher.FINISHED and not running:
            return handed
        if not running:
            continue
        tid, config = running.pop(0)
        s.on_trial_result(tid, {"val_acc": score(config), "epoch": 3})
        s.on_trial_complete(tid, {"val_acc": score(config), "epoch": 3})
    raise AssertionError("the searcher never finished")


def test_rounds_run_in_turn_and_zoom_in_on_the_best_on_the_log_scales() -> None:
    events: list[tuple[str, int]] = []
    s = RoundSearcher([LR, BETA], "random", [12, 8, 8], seed=0, metric="val_acc", mode="max", top_k=3, margin=0.1)
    s.hook = lambda kind, i, params, best: events.append((kind, i))
    handed = drive(s)
    rounds = [c[ROUND_KEY] for _, c in handed]
    assert rounds == [0] * 12 + [1] * 8 + [2] * 8  # a round starts only once the last one has ended
    assert events == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    widths = [math.log10(r[0].high / r[0].low) for r in s.ranges]
    assert widths[0] == pytest.approx(4) and widths[2] < widths[1] < widths[0]
    # every trial of a round draws inside that round's ranges, and holds β itself
    for _, c in handed:
        lr, beta = s.ranges[c[ROUND_KEY]]
        assert lr.low <= c["train.lr"] <= lr.high and beta.low <= c["train.momentum"] <= beta.high
    # the last round's best is near the optimum, on log10 lr and log10(1 - β)
    best = s.best()
    assert best is not None and best["score"] > -0.3


def test_the_next_ranges_come_from_the_top_k_of_all_rounds_so_far() -> None:
    s = RoundSearcher([LR], "random", [6, 4], seed=1, metric="val_loss", mode="min", top_k=2, margin=0.0)
    handed = []
    for i in range(6):
        handed.append(s.suggest(f"t{i}"))
    assert s.suggest("t6") is None  # round 0 is not over: wait
    for i, c in enumerate(handed):
        s.on_trial_complete(f"t{i}", {"val_loss": abs(math.log10(c["train.lr"]) + 3), "epoch": 2})
    nxt = s.suggest("t6")
    assert nxt[ROUND_KEY] == 1
    top2 = sorted(handed, key=lambda c: abs(math.log10(c["train.lr"]) + 3))[:2]
    lo, hi = sorted(c["train.lr"] for c in top2)
    (lr,) = s.ranges[1]
    if math.log10(hi / lo) >= 0.4:  # a span under 10% of the 4 decades is widened to 0.4 decades
        assert (lr.low, lr.high) == pytest.approx((lo, hi))
    else:
        assert math.log10(lr.high / lr.low) == pytest.approx(0.4)


def test_a_restored_searcher_continues_mid_round(tmp_path: Any) -> None:
    s = RoundSearcher([LR, BETA], "random", [4, 4], seed=3, metric="val_acc", mode="max")
    first = [s.suggest(f"t{i}") for i in range(3)]
    s.on_trial_complete("t0", {"val_acc": 0.5, "epoch": 1})
    s.save(str(tmp_path / "searcher.pkl"))
    again = RoundSearcher([LR, BETA], "random", [4, 4], seed=3, metric="val_acc", mode="max")
    again.restore(str(tmp_path / "searcher.pkl"))
    # both hand out the same next configuration, and both wait for the same trials
    assert again.suggest("t3") == s.suggest("t3")
    assert again.suggest("t4") is None and s.suggest("t4") is None
    assert first[0] != first[1]


def test_the_saved_searcher_replays_its_rounds_to_the_driver(tmp_path: Any) -> None:
    """Through Ray Client the searcher runs on the head node: the driver reads its newest saved
    state from the experiment folder and is told every round as it would have been live."""
    live: list[tuple[str, int, Any]] = []
    s = RoundSearcher([LR, BETA], "random", [6, 4], seed=2, metric="val_acc", mode="max", top_k=2)
    s.hook = lambda kind, i, params, best: live.append((kind, i, best and best["trial"]))
    drive(s)
    assert RoundSearcher.saved(tmp_path) is None  # nothing saved yet
    stale = RoundSearcher([LR], "random", [1], seed=9, metric="val_acc", mode="max")
    stale.save(str(tmp_path / Searcher.CKPT_FILE_TMPL.format("2026-01-01_00-00-00")))
    newest = tmp_path / Searcher.CKPT_FILE_TMPL.format("2026-01-02_00-00-00")
    s.save(str(newest))
    os.utime(newest, (newest.stat().st_mtime + 10,) * 2)
    saved = RoundSearcher.saved(tmp_path)
    assert saved is not None and saved.hook is None
    replayed: list[tuple[str, int, Any]] = []
    saved.replay(lambda kind, i, params, best: replayed.append((kind, i, best and best["trial"])))
    assert replayed == live and [k for k, _, _ in replayed] == ["start", "end", "start", "end"]
    # a round that had started but not ended when the state was saved: started only
    mid = RoundSearcher([LR], "random", [2, 2], seed=0, metric="val_acc", mode="max")
    mid.suggest("a")
    calls: list[tuple[str, int]] = []
    mid.replay(lambda kind, i, params, best: calls.append((kind, i)))
    assert calls == [("start", 0)]


def test_max_concurrent_and_a_grid_smaller_than_planned() -> None:
    s = RoundSearcher([LR], "random", [5], seed=0, metric="val_acc", mode="max", max_concurrent=2)
    assert s.suggest("a") and s.suggest("b") and s.suggest("c") is None
    s.on_trial_complete("a", {"val_acc": 0.1})
    assert s.suggest("c") is not None
    grid = [Parameter("train.lr", "log_uniform", 1e-3, 1e-1, grid_points=3)]
    g = RoundSearcher(grid, "grid", [RoundSampler(grid, "grid", 0).grid_size()], seed=0, metric="val_acc", mode="max")
    points = [g.suggest(f"g{i}") for i in range(3)]
    assert [p["train.lr"] for p in points] == pytest.approx([1e-3, 1e-2, 1e-1])
    for i in range(3):
        g.on_trial_complete(f"g{i}", {"val_acc": 0.5})
    assert g.suggest("g3") == Searcher.FINISHED


def test_tpe_learns_from_the_results_it_is_told() -> None:
    s = RoundSearcher([LR, BETA], "tpe", [40], seed=0, metric="val_acc", mode="max")
    handed = drive(s, concurrency=1)
    late = [score(c) for _, c in handed[-10:]]
    early = [score(c) for _, c in handed[:10]]  # TPE's random start-up
    assert sum(late) / 10 > sum(early) / 10
    assert list(sample([LR, BETA], "tpe", 3, 0)) == list(sample([LR, BETA], "tpe", 3, 0))


def test_diverged_trials_are_never_a_rounds_best_nor_what_the_next_round_narrows_to() -> None:
    """All of round 0 diverged: its "best" was a diverged trial (score inf) and round 1 zoomed
    in on two arbitrary diverged configurations."""
    s = RoundSearcher([LR], "random", [4, 4], seed=3, metric="val_loss", mode="min", top_k=2, margin=0.0)
    for i in range(4):
        s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"val_loss": math.inf, "epoch": 1})
    assert s.best() is None
    assert s.suggest("t4")[ROUND_KEY] == 1
    assert (s.ranges[1][0].low, s.ranges[1][0].high) == (LR.low, LR.high)  # kept, not narrowed
    # some finite: only they count, however few
    s = RoundSearcher([LR], "random", [4, 4], seed=3, metric="val_loss", mode="min", top_k=3, margin=0.0)
    handed = [s.suggest(f"t{i}") for i in range(4)]
    for i in range(len(handed)):
        s.on_trial_complete(f"t{i}", {"val_loss": 0.5 if i == 2 else math.inf, "epoch": 1})
    assert s.best()["trial"] == "t2"
    s.suggest("t4")
    assert s.ranges[1][0].low <= handed[2]["train.lr"] <= s.ranges[1][0].high
    assert math.log10(s.ranges[1][0].high / s.ranges[1][0].low) == pytest.approx(0.4)  # around t2 alone


def test_a_failed_trial_is_a_rounds_best_only_when_every_trial_failed() -> None:
    """A trial stopped as hung after one good report ranks after the trials that did not fail,
    as the run directory ranks them: it is neither the round's best nor ahead in the top-k."""
    s = RoundSearcher([LR], "random", [3, 3], seed=3, metric="val_loss", mode="min", top_k=1, margin=0.0)
    handed = [s.suggest(f"t{i}") for i in range(3)]
    s.on_trial_result("t0", {"val_loss": 0.1, "epoch": 1})
    s.on_trial_complete("t0", error=True)
    s.on_trial_complete("t1", {"val_loss": 0.5, "epoch": 3})
    s.on_trial_complete("t2", {"val_loss": 0.7, "epoch": 3})
    assert s.ranked() == ["t1", "t2", "t0"] and s.best()["trial"] == "t1"
    s.suggest("t3")
    assert s.ranges[1][0].low <= handed[1]["train.lr"] <= s.ranges[1][0].high  # narrowed around t1
    state = s.__getstate__()
    del state["failed"]  # saved by an older tuner: restored with no failed trial
    old = RoundSearcher.__new__(RoundSearcher)
    old.__setstate__(state)
    assert old.failed == set() and old.ranked() == ["t0", "t1", "t2"]
    s.on_trial_complete("t0", {"val_loss": 0.05, "epoch": 3})  # resumed (resume_errored), finished
    assert s.ranked()[0] == "t0" and not s.failed
    only = RoundSearcher([LR], "random", [1], seed=3, metric="val_loss", mode="min")
    only.suggest("t0")
    only.on_trial_result("t0", {"val_loss": 0.1, "epoch": 1})
    only.on_trial_complete("t0", error=True)
    assert only.best()["trial"] == "t0"


def test_the_largest_seed_a_sweep_may_have_draws_every_round_with_tpe() -> None:
    """search.seed 2**32 - 1 is valid, but round 1's seed + 1 made Optuna's TPE refuse it:
    the run failed after its first round."""
    from tuner.records import round_seed

    assert round_seed(2**32 - 1, 1) == 0 and round_seed(5, 2) == 7
    s = RoundSearcher([LR, BETA], "tpe", [3, 3], seed=2**32 - 1, metric="val_acc", mode="max", top_k=2, margin=0.1)
    handed = drive(s)
    assert [c[ROUND_KEY] for _, c in handed] == [0] * 3 + [1] * 3
