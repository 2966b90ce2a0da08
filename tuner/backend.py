"""Every touch of Ray's driver-side API: the cluster, search spaces, searchers, schedulers,
the Tuner and its callbacks. (The worker side, a trial, is :mod:`tuner.trial`.)

Ray's API moves between releases; this project pins ``ray[tune]==2.60.*`` and keeps the
calls here so that an upgrade changes this file and ``tuner/trial.py`` alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

# Plain output: our own progress lines instead of Ray's tables (read when Tune starts).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
# Each trial checkpoint forces a save of the experiment's state (num_to_keep=1); trials no
# longer checkpoint every epoch (tuner.trial.CheckpointPolicy), so the driver also saves it
# every 0.5 s while results come in (Ray's "auto" waits 10 s or more): what `tuner resume`
# restores after a driver crash stays as fresh as it was with a checkpoint every epoch.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0.5")

# Token authentication, said explicitly (before Ray reads its config): a local instance makes
# a token if there is none (~/.ray/auth_token); a driver joining a cluster presents one
# (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or that file). Never "disabled".
os.environ.setdefault("RAY_AUTH_MODE", "token")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.logger import TBXLoggerCallback  # noqa: E402
from ray.tune.result import DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT, TRAINING_ITERATION  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.trainable.function_trainable import wrap_function  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402
from ray.tune.search.sample import Float, Sampler, _BackwardsCompatibleNumpyRng  # noqa: E402
from ray.tune.search.variant_generator import generate_variants  # noqa: E402

from tuner.progress import TrialEvent  # noqa: E402
from tuner.results import METRIC_KEYS  # noqa: E402
from tuner.space import Parameter  # noqa: E402
from tuner.tracking import MlflowTarget  # noqa: E402

log = logging.getLogger("tuner")


# -- the cluster ------------------------------------------------------------------------------


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> dict[str, Any]:
    """Start a local Ray instance (``address`` None) or join a running cluster
    (``auto``, ``HOST:PORT``, or ``ray://HOST:PORT`` through Ray Client).

    A local instance uses every core of this machine (or ``num_cpus``), starts no dashboard
    (and would bind it to loopback), and keeps token authentication on (Ray 2.60's default
    for a local ``ray.init()``; a cluster started with ``ray start`` needs
    ``RAY_AUTH_MODE=token`` on every node and driver, and the driver needs the cluster's
    token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``). Returns
    the cluster's total resources.

    Raises:
        InputError: ``RAY_AUTH_MODE=disabled`` is set (tuner never turns authentication off).
        RunError: the cluster cannot be reached or refused the token.
    """
    from tuner.errors import InputError, RunError

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise InputError("RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on; unset it "
                         "(and hand the cluster's token to this driver instead)")
    _require_token_auth()
    if not ray.is_initialized():
        for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray._private", "ray.util.client"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # TensorBoard's writer warns on every inf it logs: a diverged trial reports inf losses.
        logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address is None:
            kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                          dashboard_host="127.0.0.1")
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, ray.exceptions.AuthenticationError) as e:
            raise RunError(f"cannot join the Ray cluster at {address}: {type(e).__name__}: {_first_line(e)} "
                           "(is the address right, and does this driver hold the cluster's token: RAY_AUTH_TOKEN, "
                           "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token?)") from e
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


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


def autoscaler_node_types() -> list[dict[str, Any]]:
    """The node types an autoscaler of this cluster can still start, as the cluster reports
    them to Ray's GCS (KubeRay does; a cluster made from this project's ``cluster.yaml``
    publishes its types with :func:`publish_node_types`): ``[{"name", "resources",
    "max_count"}]``, ``max_count`` -1 for no limit. Empty when nothing is reported."""
    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # an older GCS, or Ray Client: no autoscaler to tell of
        return []
    if config is None:
        return []
    return [{"name": g.name, "resources": {k: float(v) for k, v in g.resources.items()},
             "max_count": int(g.max_count)} for g in config.node_group_configs if g.max_count != 0]


def publish_node_types(node_types: dict[str, dict[str, Any]], max_workers: int | None = None) -> None:
    """Tell the connected cluster's GCS which node types its autoscaler can start, in Ray's
    own cluster-config record (what KubeRay reports, and what Ray Data reads to scale from
    zero). ``node_types`` is a cluster launcher config's ``available_node_types``: each with
    ``resources`` (``CPU``, ``GPU``...) and ``max_workers``."""
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    for name, t in node_types.items():
        group = config.node_group_configs.add()
        group.name = name
        for key, value in (t.get("resources") or {}).items():
            group.resources[key] = int(value)
        group.min_count = int(t.get("min_workers", 0))
        group.max_count = int(t.get("max_workers", max_workers if max_workers is not None else -1))
    ray._private.worker.global_worker.gcs_client.internal_kv_put(
        ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(), config.SerializeToString(), True,
        ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE.encode())


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
    """ASHA over epochs (``training_iteration``: one report per epoch), or FIFO for ``none``.
    The ASHA keeps its rung records across ``tuner resume`` (:class:`ResumableASHA`)."""
    if name == "none":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    return ResumableASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=brackets)


class ResumableASHA(ASHAScheduler):
    """Ray's ASHA, plus its state as plain data: Ray 2.60 restores an experiment's trials and
    searcher but not its scheduler (ray-project/ray#30838), so a resumed ASHA would forget
    every rung record and judge the rest of the sweep against nothing. :class:`_SchedulerState`
    saves :meth:`rungs_state` with each experiment snapshot and hands it back on restore."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._restored_brackets: dict[str, int] = {}

    def rungs_state(self) -> dict[str, Any]:
        """``{"brackets": [[{"milestone", "recorded": {trial_id: value}}...]...],
        "trial_bracket": {trial_id: bracket index}}``; values are ASHA's own (the metric
        times +1 for max, -1 for min)."""
        index = {id(b): i for i, b in enumerate(self._brackets)}
        return {"brackets": [[{"milestone": float(m), "recorded": {k: float(v) for k, v in rec.items()}}
                              for m, rec in b._rungs] for b in self._brackets],
                "trial_bracket": {tid: index[id(b)] for tid, b in self._trial_info.items() if id(b) in index}}

    def set_rungs_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`rungs_state` returned (the same sweep: same rungs)."""
        for bracket, rungs in zip(self._brackets, state["brackets"]):
            for (milestone, recorded), saved in zip(bracket._rungs, rungs):
                if float(milestone) != float(saved["milestone"]):
                    raise ValueError(f"ASHA rung {milestone} does not match the saved rung {saved['milestone']}")
                recorded.clear()
                recorded.update(saved["recorded"])
        self._restored_brackets = {str(k): int(v) for k, v in state.get("trial_bracket", {}).items()}

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        i = self._restored_brackets.get(trial.trial_id)
        if i is not None and i < len(self._brackets):  # a restored trial stays in its bracket
            self._trial_info[trial.trial_id] = self._brackets[i]


RUNGS_FILE = "asha-rungs.json"


class _SchedulerState(tune.Callback):
    """Saves the scheduler's state with every experiment snapshot (Tune checkpoints a
    callback's :meth:`get_state` beside the trials' state and restores it before the trials
    are re-queued) and writes it as ``asha-rungs.json`` into the round's folder, for people
    and tests to read. Holds the very scheduler object the Tuner uses: both are pickled in
    one piece into ``tuner.pkl``, so they stay one object after a restore."""

    def __init__(self, scheduler: ResumableASHA) -> None:
        self.scheduler = scheduler
        self._folder: str | None = None

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self._folder = trial.storage.experiment_driver_staging_path

    def get_state(self) -> dict[str, Any] | None:
        state = self.scheduler.rungs_state()
        if self._folder:  # the staging folder is synced to the round's folder with this snapshot
            from tuner.files import write_json

            write_json(Path(self._folder) / RUNGS_FILE, state)
        return {"asha": state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.scheduler.set_rungs_state(state["asha"])


# -- running a round --------------------------------------------------------------------------


class _ProgressCallback(tune.Callback):
    def __init__(self, on_step: Callable[[list[TrialEvent]], None] | None, every_s: float) -> None:
        self.on_step = on_step
        self.every_s = every_s
        self._last = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into tuner.pkl; the driver's printer is not part of the
        # experiment (a resumed run attaches its own, see resume_round).
        return {**self.__dict__, "on_step": None}

    def _emit(self, trials: list[Any], force: bool = False) -> None:
        now = time.monotonic()
        if self.on_step is None or (not force and now - self._last < self.every_s):
            return
        self._last = now
        self.on_step([TrialEvent(t.trial_id, t.status, dict(t.config), dict(t.last_result or {})) for t in trials])

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._emit(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._emit(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._emit(trials, force=True)


class _Outcome(tune.Callback):
    """Whether the experiment ended with trials left unfinished. Tune's handler of the first
    Ctrl-C saves the experiment and returns from ``fit()`` as if it had finished; its cleanup
    then marks the running trials TERMINATED, so their status is read at the end of the last
    step of the loop, before that cleanup."""

    def __init__(self) -> None:
        self.unfinished = 0
        self._status: dict[str, str] = {}

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._status = {t.trial_id: t.status for t in trials}

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.unfinished = sum(1 for t in trials if self._status.get(t.trial_id, t.status) not in ("TERMINATED", "ERROR"))


@dataclass
class RoundSettings:
    """Everything one Ray Tune experiment (one round of a sweep) needs."""

    storage: str | Path  # the run directory (a path or a URI); the round's trials go under storage/name
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


class _EpochTensorBoard(TBXLoggerCallback):  # type: ignore[misc]
    """Ray Tune's TensorBoard logger, lean: a trial's metrics under ``ray/tune/`` with the epoch
    as step, written to the trial's folder. Ray's writes every number of a result (Tune's
    bookkeeping too: ~20 scalars) and flushes the file after each, ~5 ms of the driver's CPU a
    result, on the cores the trials train on; this one writes the trial's own metrics and
    flushes at most every :attr:`FLUSH_S` per trial, and at the trial's end."""

    KEYS = ("train_loss", "val_loss", "val_acc", "epoch_s", "samples_per_s")
    FLUSH_S = 2.0

    def __init__(self) -> None:
        super().__init__()
        self._flushed: dict[Any, float] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks: open writers stay behind
        return {**self.__dict__, "_trial_writer": {}, "_trial_result": {}, "_flushed": {}}

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        step = int(result.get("epoch") or result.get(TRAINING_ITERATION) or iteration)
        writer = self._trial_writer[trial]
        logged = {}
        for key in self.KEYS:
            value = result.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:  # not NaN
                logged[f"ray/tune/{key}"] = value
                writer.add_scalar(f"ray/tune/{key}", value, global_step=step)
        self._trial_result[trial] = logged  # the trial's hparams entry at its end
        now = time.monotonic()
        if now - self._flushed.get(trial, 0.0) >= self.FLUSH_S:
            writer.flush()
            self._flushed[trial] = now

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._flushed.pop(trial, None)
        super().log_trial_end(trial, failed)  # closes (and so flushes) the trial's writer


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


# Longest a trial keeps its results before sending them to the driver in one batch.
RESULT_BATCH_S = 1.0


def _trainable(s: RoundSettings) -> Any:
    function = tune.with_parameters(s.trainable, **s.trainable_args)
    return tune.with_resources(_batched_results(function, decision_epochs(s.scheduler)), {"cpu": s.cpu, "gpu": s.gpu})


@contextlib.contextmanager
def _batching() -> Iterator[None]:
    """Tune's controller calls a trial's ``train_buffered`` (:func:`_batched_results`) instead
    of ``train`` when ``TUNE_RESULT_BUFFER_LENGTH`` > 1 as it starts. Set for our experiments
    alone; a user's ``TUNE_RESULT_BUFFER_LENGTH=1`` turns batching off."""
    key = "TUNE_RESULT_BUFFER_LENGTH"
    if key in os.environ:
        yield
        return
    os.environ[key] = "1000"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def decision_epochs(scheduler: Any) -> frozenset[int]:
    """The epochs at which ``scheduler`` may stop a trial: ASHA's rung milestones in every
    bracket (none for FIFO, which lets every trial run its budget)."""
    return frozenset(int(m) for b in getattr(scheduler, "_brackets", ()) for m, _ in b._rungs)


def _batched_results(function: Callable[..., None], decisions: frozenset[int]) -> type:
    """The function trainable ``function`` as Tune's class, sending its results to the driver
    in batches of up to :data:`RESULT_BATCH_S`.

    With one result a call, a trial's ``tune.report`` waits for the driver to process the
    result and ask for the next (~10 ms an epoch on 2 busy cores: 10-20% of a 50-100 ms epoch),
    and the driver pays a remote call per epoch. A batch ends early where a decision may
    follow, so that nothing is trained in vain and nothing waits: at an epoch where ASHA
    judges a trial (``decisions``: its rung milestones) and at the trial's end. A trial that
    fails sends the results it had before the error, which comes with the next call. A result
    with a checkpoint travels alone (Tune 2.60 saves it, then asks for more; after a batch of
    several it would also act on the earlier results' CONTINUE and ask twice). Tune 2.60's
    controller passes ``(length, seconds)`` to ``train_buffered(seconds, length)``, the wrong
    way round; this trainable takes neither and uses its own rule.
    """
    cls = wrap_function(function)

    class Batched(cls):  # type: ignore[misc, valid-type]
        _held: dict[str, Any] | None = None  # a checkpoint's result, sent with the next call
        _error: Exception | None = None  # raised by the trial after a batch's first result

        def train_buffered(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._held is not None:
                held, self._held = self._held, None
                return [held]
            results: list[dict[str, Any]] = []
            until = time.monotonic() + RESULT_BATCH_S
            while True:
                try:
                    result = self.train()
                except Exception as e:
                    if not results:
                        raise
                    self._error = e
                    return results
                if result.get(SHOULD_CHECKPOINT) and results:
                    self._held = result
                    return results
                results.append(result)
                if (result.get(DONE) or result.get(SHOULD_CHECKPOINT) or result.get(RESULT_DUPLICATE)
                        or result.get(TRAINING_ITERATION) in decisions or time.monotonic() >= until):
                    return results

        def reset(self, *args: Any, **kwargs: Any) -> bool:  # a reused actor starts its next trial afresh
            self._held = self._error = None
            return bool(super().reset(*args, **kwargs))

    Batched.__name__ = Batched.__qualname__ = function.__name__  # trial names stay run_trial_...
    return Batched


def is_client() -> bool:
    """True when connected through Ray Client (``ray://``): Tune then runs on the head node
    and our progress callback cannot print here."""
    return bool(ray.util.client.ray.is_connected())


def run_round(s: RoundSettings) -> None:
    """Run one round of trials to completion (ASHA stops some early).

    Raises:
        KeyboardInterrupt: the round was interrupted (Ctrl-C); its state is saved and
            :func:`resume_round` continues it.
    """
    search_alg, space = search_algorithm(s.params, s.method, s.metric, s.mode, s.seed, s.max_concurrent)
    outcome = _Outcome()
    callbacks: list[Any] = [outcome, _EpochTensorBoard()]
    if s.on_progress and not is_client():
        callbacks.append(_ProgressCallback(s.on_progress, s.progress_every_s))
    if isinstance(s.scheduler, ResumableASHA):
        callbacks.append(_SchedulerState(s.scheduler))
    if s.mlflow is not None:
        callbacks.append(mlflow_callback(s.mlflow))
    tuner = tune.Tuner(
        _trainable(s),
        param_space=space,
        tune_config=tune.TuneConfig(metric=s.metric, mode=s.mode, num_samples=s.num_samples,
                                    search_alg=search_alg, scheduler=s.scheduler, reuse_actors=True),
        run_config=tune.RunConfig(
            name=s.name, storage_path=str(s.storage), verbose=0, progress_reporter=None, callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
        ),
    )
    with _batching():
        tuner.fit()
    _raise_if_interrupted(outcome)


def _raise_if_interrupted(outcome: _Outcome | None) -> None:
    if outcome is not None and outcome.unfinished:
        raise KeyboardInterrupt(f"{outcome.unfinished} trials unfinished")


def can_resume_round(storage: str | Path, name: str) -> bool:
    """Whether ``storage/name`` holds a Tune experiment that :func:`resume_round` can continue."""
    return bool(tune.Tuner.can_restore(_join(storage, name)))


def _join(storage: str | Path, name: str) -> str:
    return str(storage).rstrip("/") + "/" + name


def resume_round(s: RoundSettings) -> None:
    """Continue an interrupted round from its saved state: finished trials stay finished,
    unfinished and errored ones go on from their last checkpoints, the searcher and ASHA's
    rung records are restored. ``s`` must describe the same round as at its start (its
    trainable and data are handed in again: Tune saves neither); its search space and
    scheduler come from the saved state.

    The saved state (``tuner.pkl``, the experiment and callback snapshots) is unpickled:
    run only on run directories from a trusted source.
    """
    tuner = tune.Tuner.restore(_join(s.storage, s.name), trainable=_trainable(s), resume_unfinished=True,
                               resume_errored=True)
    outcome = None
    local = getattr(tuner, "_local_tuner", None)  # None through Ray Client (the Tuner runs on the head)
    if local is not None:
        for cb in local.get_run_config().callbacks or []:
            if isinstance(cb, _ProgressCallback):
                cb.on_step = s.on_progress
                cb.every_s = s.progress_every_s
            elif isinstance(cb, _Outcome):
                outcome = cb
    with _batching():
        tuner.fit()
    _raise_if_interrupted(outcome)
