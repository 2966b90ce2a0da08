"""Search domains and searchers: every distribution sampled on its own scale.

Random search draws each parameter uniformly on its latent scale (:mod:`tuner.space`) through
:class:`LatentUniform`; TPE (Optuna's, through Ray Tune's ``OptunaSearch``) models the latent
scales and :class:`LatentSearcher` hands trials the values themselves (β, never 1 - β).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.sample import Float, Sampler, _BackwardsCompatibleNumpyRng
from ray.tune.search.variant_generator import generate_variants

from tuner.space import Parameter


class LatentUniform(Sampler):
    """Draws z uniformly on the parameter's latent scale and returns its value: log-uniform,
    1 - β log-uniform and integers all go through it, so Ray's random search samples every
    distribution on its own scale."""

    def __init__(self, param: Parameter) -> None:
        self.param = param

    def sample(self, domain: Any, config: Any = None, size: int = 1, random_state: Any = None) -> Any:
        if not isinstance(random_state, _BackwardsCompatibleNumpyRng):
            random_state = _BackwardsCompatibleNumpyRng(random_state)
        lo, hi = self.param.latent_bounds()
        values = [self.param.from_latent(z) for z in random_state.uniform(lo, hi, size=size)]
        return values if size > 1 else values[0]

    def __str__(self) -> str:
        return f"LatentUniform({self.param.distribution})"


def domain(param: Parameter) -> Any:
    """The Ray Tune domain that random search samples ``param`` from."""
    if param.values is not None:
        return tune.choice(list(param.values))
    lo, hi = float(param.low), float(param.high)  # type: ignore[arg-type]
    d = Float(lo, hi)
    d.set_sampler(LatentUniform(param))
    return d


def param_space(params: Sequence[Parameter], method: str) -> dict[str, Any]:
    """Ray Tune's ``param_space`` for random or grid search, keyed by dotted path."""
    if method == "grid":
        return {p.path: tune.grid_search(p.grid()) for p in params}
    return {p.path: domain(p) for p in params}


class LatentSearcher(Searcher):
    """Runs a model-based searcher (Optuna's TPE) on the latent scales and hands trials
    the values themselves: the searcher models log10(1 - β), the trial sees β."""

    def __init__(self, inner: Searcher, params: Sequence[Parameter], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.inner = inner
        self.params = list(params)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return bool(self.inner.set_search_properties(metric, mode, {}, **spec))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        latent = self.inner.suggest(trial_id)
        if not isinstance(latent, dict):
            return latent
        return {p.path: p.from_latent(latent[p.path]) for p in self.params}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


def _tpe(params: Sequence[Parameter], metric: str, mode: str, seed: int) -> LatentSearcher:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space: dict[str, Any] = {}
    for p in params:
        if p.values is not None:  # the index of the value: lists (e.g. widths) are not Optuna choices
            space[p.path] = optuna.distributions.CategoricalDistribution(list(range(len(p.values))))
        else:
            lo, hi = p.latent_bounds()
            space[p.path] = optuna.distributions.FloatDistribution(lo, hi)
    inner = OptunaSearch(space=space, metric=metric, mode=mode, sampler=optuna.samplers.TPESampler(seed=seed))
    return LatentSearcher(inner, params, metric, mode)


def search_algorithm(
    params: Sequence[Parameter], method: str, metric: str, mode: str, seed: int, max_concurrent: int = 0
) -> tuple[Any, dict[str, Any]]:
    """The search algorithm and ``param_space`` for one round.

    ``random`` and ``grid`` are Ray Tune's BasicVariantGenerator (seeded with ``seed``);
    ``tpe`` is Optuna's TPE through Ray Tune's OptunaSearch, on the latent scales.
    """
    if method == "tpe" and params:
        searcher: Any = _tpe(params, metric, mode, seed)
        if max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
        return searcher, {}
    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent), param_space(params, method)


def sample(
    params: Sequence[Parameter], method: str, n: int, seed: int, metric: str = "val_acc", mode: str = "max"
) -> Iterator[dict[str, Any]]:
    """The first ``n`` configurations a round with this seed would hand its trials, one at a
    time, without starting Ray (``tuner space`` streams them). For ``grid``, ``n`` caps the
    grid's points."""
    if not params:
        for _ in range(n):
            yield {}
        return
    if method == "tpe":
        searcher = _tpe(params, metric, mode, seed)
        for i in range(n):
            yield searcher.suggest(f"space_{i}") or {}
        return
    rng = _BackwardsCompatibleNumpyRng(seed)  # as BasicVariantGenerator(random_state=seed) holds it
    spec = {"config": param_space(params, method)}
    made = 0
    while made < n:
        before = made
        for _, resolved in generate_variants(spec, random_state=rng):
            yield dict(resolved["config"])
            made += 1
            if made == n:
                return
        if method == "grid" or made == before:
            return
