"""The searcher: every round of a sweep in one Ray Tune experiment, each parameter on its scale.

:class:`RoundSearcher` hands out round 0's configurations over the sweep file's ranges, waits
for the round's trials to end, narrows every range to the span of the best configurations of
all rounds so far (:meth:`tuner.space.Parameter.restrict`) and hands out the next round's --
all in one experiment, on the same workers (no worker start between rounds), under one ASHA
that judges a later round's trials against the rung records of the earlier ones. Its state is
saved with every experiment snapshot, so ``tuner resume`` continues mid-round or between
rounds.

Within a round, :class:`RoundSampler` draws: ``random`` uniformly on each parameter's latent
scale (log10 x, log10(1 - β), ...); ``grid`` the cross product of each parameter's grid;
``tpe`` Optuna's TPE on the latent scales (the searcher models log10(1 - β); the trial gets β).
``tuner space`` prints what the first round would draw (:func:`sample`).
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune
from ray.tune.search import Searcher

from tuner.records import EPOCH, ROUND_KEY, round_seed, sign
from tuner.space import Parameter, restrict_all


class RoundSampler:
    """Draws one round's configurations (``{path: value}``) with ``method`` and ``seed``."""

    def __init__(self, params: Sequence[Parameter], method: str, seed: int, mode: str = "max") -> None:
        self.params, self.method, self.seed, self.mode = list(params), method, seed, mode
        self.rng = np.random.default_rng(seed)
        self._grid: Iterator[tuple[Any, ...]] | None = None
        self._study: Any = None
        self._asked: dict[str, Any] = {}  # trial id -> its Optuna trial (tpe)

    def grid_size(self) -> int:
        """Points of one pass over the grid."""
        return math.prod(len(p.grid()) for p in self.params)

    def draw(self, key: str = "") -> dict[str, Any] | None:
        """The next configuration (None when a grid is exhausted); ``key`` names the trial, so
        that TPE can be told its result (:meth:`tell`). A grid of no parameters is one point."""
        if self.method == "grid":
            if self._grid is None:
                self._grid = iter(itertools.product(*(p.grid() for p in self.params)))
            point = next(self._grid, None)
            return None if point is None else {p.path: v for p, v in zip(self.params, point)}
        if not self.params:
            return {}
        if self.method == "tpe":
            return self._tpe_draw(key)
        return {p.path: p.sample(self.rng) for p in self.params}

    def _tpe_draw(self, key: str) -> dict[str, Any]:
        import optuna

        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                direction="maximize" if self.mode == "max" else "minimize",
                sampler=optuna.samplers.TPESampler(seed=self.seed),
            )
        space = {
            p.path: (
                optuna.distributions.CategoricalDistribution(list(range(len(p.values))))
                if p.values is not None
                else optuna.distributions.FloatDistribution(*p.latent_bounds())
            )
            for p in self.params
        }
        trial = self._study.ask(space)
        self._asked[key] = trial
        # a categorical's index is its latent cell's lower edge: from_latent reads it as the value
        return {p.path: p.from_latent(trial.params[p.path]) for p in self.params}

    def tell(self, key: str, score: float | None) -> None:
        """Tell TPE how the trial ``key`` scored (None or non-finite: it failed)."""
        trial = self._asked.pop(key, None)
        if trial is None or self._study is None:
            return
        import optuna

        if score is None or not math.isfinite(score):
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, score)


def sample(
    params: Sequence[Parameter], method: str, n: int, seed: int, metric: str = "val_acc", mode: str = "max"
) -> Iterator[dict[str, Any]]:
    """The first ``n`` configurations the first round with this seed hands its trials, one at a
    time, without Ray (``tuner space`` streams them). A grid gives at most its points; with
    nothing searched (no parameters: an export file's configuration), there is one."""
    sampler = RoundSampler(params, method, seed, mode)
    for i in range(n if params else min(n, 1)):
        config = sampler.draw(f"space-{i}")
        if config is None:
            return
        yield config


RoundHook = Callable[[str, int, list[Parameter], dict[str, Any] | None], None]


class RoundSearcher(Searcher):
    """Runs every round of a sweep in one experiment (see the module docstring).

    Args:
        params: the sweep file's parameters (round 0's ranges, and the bounds refine keeps to).
        method: random | grid | tpe.
        plan: trials per round (the first round's, then each refine round's).
        seed: round r draws with ``seed + r`` (:func:`tuner.records.round_seed`).
        metric, mode: what ranks the configurations.
        top_k, margin: refine: the configurations whose span sets the next ranges, and the
            widening on each side.
        max_concurrent: trials running at once (0: as many as resources allow).
    """

    def __init__(
        self,
        params: Sequence[Parameter],
        method: str,
        plan: Sequence[int],
        seed: int,
        metric: str,
        mode: str,
        top_k: int = 5,
        margin: float = 0.1,
        max_concurrent: int = 0,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.original = list(params)
        self.method, self.plan, self.seed = method, list(plan), seed
        self.top_k, self.margin, self.max_concurrent = top_k, margin, max_concurrent
        self.round = 0
        self.ranges: list[list[Parameter]] = [list(params)]  # each round's, as it was drawn from
        self.issued = 0  # trials handed out in the current round
        self.trial_round: dict[str, int] = {}
        self.trial_params: dict[str, dict[str, Any]] = {}
        self.last: dict[str, tuple[float | None, int]] = {}  # trial -> (its last score, its epochs)
        self.live: set[str] = set()
        self.failed: set[str] = set()  # trials that ended with an error: ranked after the others
        self.ended: dict[int, int] = {}  # round -> its trials that ended (counted: the cost per trial stays flat)
        self.rounds_ended: set[int] = set()
        self.sampler = RoundSampler(params, method, seed, mode)
        self.hook: RoundHook | None = None  # the driver's: records and prints rounds (not pickled)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "hook": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"failed": set(), **state})  # saved by a tuner before it was kept

    # -- Tune's side ------------------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # metric and mode are the sweep's, set at construction

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.max_concurrent and len(self.live) >= self.max_concurrent:
            return None
        if self.issued >= self.plan[self.round]:
            if self.round not in self.rounds_ended:
                return None  # the round's last trials are still running: wait for their results
            if self.round + 1 >= len(self.plan):
                return Searcher.FINISHED
            self._next_round()
        config = self.sampler.draw(trial_id)
        if config is None:  # a grid smaller than planned
            self.plan[self.round] = self.issued
            return Searcher.FINISHED if self.issued == 0 or self.round + 1 >= len(self.plan) else None
        if self.issued == 0:
            self._emit("start", self.round, self.ranges[self.round], None)
        self.issued += 1
        self.trial_round[trial_id] = self.round
        self.trial_params[trial_id] = dict(config)
        self.live.add(trial_id)
        return {**config, ROUND_KEY: self.round}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result:
            self._record(trial_id, result)
        if not error:  # an errored trial resumed (resume_errored) that finished this time
            self.failed.discard(trial_id)
        if trial_id not in self.live:
            return  # not one of ours, or told twice
        self.live.discard(trial_id)
        if error:
            self.failed.add(trial_id)
        r = self.trial_round[trial_id]
        self.ended[r] = self.ended.get(r, 0) + 1
        if self.method == "tpe":
            self.sampler.tell(trial_id, None if error else self.last.get(trial_id, (None, 0))[0])
        if r == self.round and self.issued >= self.plan[r] and self.ended[r] >= self.plan[r]:
            self.rounds_ended.add(r)
            self._emit("end", r, self.ranges[r], self.best(rounds=[r]))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        hook = self.hook
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self.__dict__.setdefault("failed", set())  # saved by a tuner before it was kept
        self.hook = hook

    @classmethod
    def saved(cls, experiment_dir: str | Path) -> RoundSearcher | None:
        """The searcher as Tune last saved it in ``experiment_dir`` (its newest
        ``searcher-state-*.pkl``), or None when there is none. Through Ray Client the experiment
        runs on the head node: this is how the driver learns what its rounds were."""
        files = sorted(Path(experiment_dir).glob(Searcher.CKPT_FILE_TMPL.format("*")), key=lambda f: f.stat().st_mtime)
        if not files:
            return None
        searcher = cls.__new__(cls)
        searcher.hook = None
        searcher.restore(str(files[-1]))
        return searcher

    def replay(self, hook: RoundHook) -> None:
        """Tell ``hook`` every round this searcher started and ended, in order (what it would
        have been told live)."""
        for index, params in enumerate(self.ranges):
            hook("start", index, list(params), None)
            if index in self.rounds_ended:
                hook("end", index, list(params), self.best(rounds=[index]))

    # -- rounds -----------------------------------------------------------------------------

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            epoch = int(result.get(EPOCH) or result.get("training_iteration") or 0)
            self.last[trial_id] = (float(value), epoch)

    def ranked(self, rounds: Sequence[int] | None = None) -> list[str]:
        """Trials with a score, best first (non-finite last, then a failed trial after every
        one that did not fail; ties: more epochs first), as the run directory ranks them
        (:func:`tuner.records.rank`)."""
        s = sign(self.mode)

        def key(t: str) -> tuple[bool, bool, float, int]:
            score, epochs = self.last[t]
            value = -s * score if score is not None and math.isfinite(score) else math.inf
            return (value == math.inf, t in self.failed, value, -epochs)

        return sorted((t for t in self.last if rounds is None or self.trial_round.get(t) in rounds), key=key)

    def finite(self, rounds: Sequence[int] | None = None) -> list[str]:
        """:meth:`ranked` without the trials whose score is not finite (diverged): none of them
        is a round's best, nor among the top-k a refine round narrows to."""
        return [t for t in self.ranked(rounds) if math.isfinite(self.last[t][0])]

    def best(self, rounds: Sequence[int] | None = None) -> dict[str, Any] | None:
        ranked = self.finite(rounds)
        if not ranked:
            return None
        t = ranked[0]
        return {"trial": t, "score": self.last[t][0], "params": self.trial_params.get(t, {})}

    def _next_round(self) -> None:
        top = [self.trial_params[t] for t in self.finite(rounds=list(range(self.round + 1)))[: self.top_k]]
        # no finite score yet: the next round draws from this round's ranges again
        ranges = (
            restrict_all(self.ranges[self.round], self.original, top, self.margin) if top else self.ranges[self.round]
        )
        self.round += 1
        self.issued = 0
        self.ranges.append(ranges)
        self.sampler = RoundSampler(ranges, self.method, round_seed(self.seed, self.round), self.mode)

    def _emit(self, kind: str, index: int, params: list[Parameter], best: dict[str, Any] | None) -> None:
        if self.hook is not None:
            self.hook(kind, index, list(params), best)


class SearcherLink(tune.Callback):
    """Holds the experiment's :class:`RoundSearcher`: both are pickled in one piece into
    ``tuner.pkl``, so after a restore the driver reaches the searcher Tune restored through
    this callback (to attach its :attr:`RoundSearcher.hook` again)."""

    def __init__(self, searcher: RoundSearcher) -> None:
        self.searcher = searcher
