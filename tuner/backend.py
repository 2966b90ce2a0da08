"""Every touch of Ray's driver-side API: the cluster, search spaces, searchers, schedulers,
the Tuner and its callbacks. (The worker side, a trial, is :mod:`tuner.trial`.)

Ray's API moves between releases; this project pins ``ray[tune]==2.60.*`` and keeps the
calls here so that an upgrade changes this file and ``tuner/trial.py`` alone.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

# Plain output: our own progress lines instead of Ray's tables (read when Tune starts).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
# Tiny trials checkpoint every epoch; the experiment-state sync this forces is cheap here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

# Token authentication, said explicitly (before Ray reads its config): a local instance makes
# a token if there is none (~/.ray/auth_token); a driver joining a cluster presents one
# (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or that file). Never "disabled".
os.environ.setdefault("RAY_AUTH_MODE", "token")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402
from ray.tune.search.sample import Categorical, Float, Sampler, _BackwardsCompatibleNumpyRng  # noqa: E402
from ray.tune.search.variant_generator import generate_variants  # noqa: E402

from tuner.progress import TrialEvent  # noqa: E402
from tuner.results import METRIC_KEYS  # noqa: E402
from tuner.space import Parameter  # noqa: E402
from tuner.tracking import MlflowTarget  # noqa: E402

log = logging.getLogger("tuner")


# -- the cluster ------------------------------------------------------------------------------


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> dict[str, Any]:
    """Start a local Ray instance (``address`` None) or join a running cluster.

    A local instance uses every core of this machine (or ``num_cpus``), binds its
    dashboard to loopback, and keeps token authentication on (Ray 2.60's default for a
    local ``ray.init()``; a cluster started with ``ray start`` needs ``RAY_AUTH_MODE=token``
    on every node and driver). Returns the cluster's total resources.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise RuntimeError("RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on; unset it")
    _require_token_auth()
    if not ray.is_initialized():
        for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray._private"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # TensorBoard's writer warns on every inf it logs: a diverged trial reports inf losses.
        logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address is None:
            kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                          dashboard_host="127.0.0.1")
        else:
            kwargs["address"] = address
        ray.init(**kwargs)
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}


def _require_token_auth() -> None:
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:  # Ray was imported before us
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()


def disconnect() -> None:
    """Shut the local Ray instance down (or leave the cluster)."""
    if ray.is_initialized():
        ray.shutdown()


def cluster_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes: id, address and resources."""
    return [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "resources": n["Resources"]}
            for n in ray.nodes() if n.get("Alive")]


# -- search spaces ----------------------------------------------------------------------------


class _LatentUniform(Sampler):
    """Draws z uniformly on the parameter's latent scale and returns its value (see
    :mod:`tuner.space`): log-uniform, 1 - β log-uniform and integers all go through it, so
    Ray's random search samples every distribution on its own scale."""

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
    d.set_sampler(_LatentUniform(param))
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

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, {}, **spec)

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
    inner = OptunaSearch(space=space, metric=metric, mode=mode,
                         sampler=optuna.samplers.TPESampler(seed=seed))
    return LatentSearcher(inner, params, metric, mode)


def search_algorithm(params: Sequence[Parameter], method: str, metric: str, mode: str, seed: int,
                     max_concurrent: int = 0) -> tuple[Any, dict[str, Any]]:
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


def sample(params: Sequence[Parameter], method: str, n: int, seed: int, metric: str = "val_acc",
           mode: str = "max") -> list[dict[str, Any]]:
    """The first ``n`` configurations a round with this seed would hand its trials, without
    starting Ray (for ``tuner space``). For ``grid``, ``n`` caps the grid's points."""
    if not params:
        return [{} for _ in range(n)]
    if method == "tpe":
        searcher = _tpe(params, metric, mode, seed)
        return [searcher.suggest(f"space_{i}") or {} for i in range(n)]
    rng = _BackwardsCompatibleNumpyRng(seed)  # as BasicVariantGenerator(random_state=seed) holds it
    spec = {"config": param_space(params, method)}
    out: list[dict[str, Any]] = []
    while len(out) < n:
        before = len(out)
        for _, resolved in generate_variants(spec, random_state=rng):
            out.append(dict(resolved["config"]))
            if len(out) == n:
                break
        if method == "grid" or len(out) == before:
            break
    return out


# -- plain tasks ------------------------------------------------------------------------------


def run_tasks(fn: Callable[..., Any], calls: Sequence[dict[str, Any]], shared: dict[str, Any], cpu: float,
              gpu: float, on_result: Callable[[int, Any], None] | None = None, max_retries: int = 2) -> list[Any]:
    """Run ``fn(**call, **shared, device=...)`` for every call as Ray tasks, all in parallel
    on the cluster; ``shared`` values go through the object store once. Results come back in
    the order of ``calls``; ``on_result(index, result)`` is told of each as it finishes. A task
    whose worker dies is retried ``max_retries`` times."""
    from tuner.trial import task

    refs = {k: ray.put(v) for k, v in shared.items()}
    remote = ray.remote(task).options(num_cpus=cpu, num_gpus=gpu, max_retries=max_retries)
    pending = {remote.remote(fn, call, cpu, **refs): i for i, call in enumerate(calls)}
    results: list[Any] = [None] * len(calls)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        results[index] = ray.get(ready[0])
        if on_result is not None:
            on_result(index, results[index])
    return results


# -- schedulers -------------------------------------------------------------------------------


def scheduler(name: str, max_t: int, grace_period: int, reduction_factor: float, brackets: int) -> Any:
    """ASHA over epochs (``training_iteration``: one report per epoch), or FIFO for ``none``."""
    if name == "none":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=brackets)


# -- running a round --------------------------------------------------------------------------


class _ProgressCallback(tune.Callback):
    def __init__(self, on_step: Callable[[list[TrialEvent]], None], every_s: float) -> None:
        self.on_step = on_step
        self.every_s = every_s
        self._last = 0.0

    def _emit(self, trials: list[Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        self.on_step([TrialEvent(t.trial_id, t.status, dict(t.config), dict(t.last_result or {})) for t in trials])

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._emit(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._emit(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._emit(trials, force=True)


@dataclass
class RoundSettings:
    """Everything one Ray Tune experiment (one round of a sweep) needs."""

    storage: Path  # the run directory; the round's trials go under storage/name
    name: str  # e.g. "round-0"
    trainable: Callable[..., None]  # tuner.trial.run_trial
    trainable_args: dict[str, Any]  # shipped once through the object store (tune.with_parameters)
    params: Sequence[Parameter]
    method: str
    num_samples: int
    seed: int
    metric: str
    mode: str
    scheduler: Any
    cpu: float
    gpu: float
    max_failures: int
    max_concurrent: int = 0
    on_progress: Callable[[list[TrialEvent]], None] | None = None
    progress_every_s: float = 5.0
    mlflow: MlflowTarget | None = None  # log each trial as an MLflow run (tuner[mlflow] installed)


def mlflow_callback(target: MlflowTarget) -> Any:
    """Ray Tune's MLflow callback for ``target``: on the driver, one MLflow run per trial
    with the searched parameters as params and our per-epoch metrics (step = epoch)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class _EpochMetrics(MLflowLoggerCallback):  # type: ignore[misc]
        # Ray's callback logs every key of a result (its own bookkeeping too), one call each;
        # ours are the metrics a trial reports, which keeps a long sweep's driver quick.
        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            metrics = {k: result[k] for k in (*METRIC_KEYS, "time_total_s")
                       if k != "epoch" and isinstance(result.get(k), (bool, int, float))}
            step = int(result.get("epoch") or result.get("training_iteration") or iteration)
            self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics, step=step)

    return _EpochMetrics(tracking_uri=target.uri, experiment_name=target.experiment, tags=dict(target.tags))


def run_round(s: RoundSettings) -> None:
    """Run one round of trials to completion (ASHA stops some early)."""
    trainable = tune.with_resources(tune.with_parameters(s.trainable, **s.trainable_args),
                                    {"cpu": s.cpu, "gpu": s.gpu})
    search_alg, space = search_algorithm(s.params, s.method, s.metric, s.mode, s.seed, s.max_concurrent)
    callbacks = [_ProgressCallback(s.on_progress, s.progress_every_s)] if s.on_progress else []
    if s.mlflow is not None:
        callbacks.append(mlflow_callback(s.mlflow))
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric=s.metric, mode=s.mode, num_samples=s.num_samples,
                                    search_alg=search_alg, scheduler=s.scheduler, reuse_actors=True),
        run_config=tune.RunConfig(
            name=s.name, storage_path=str(s.storage), verbose=0, progress_reporter=None, callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
        ),
    )
    tuner.fit()
