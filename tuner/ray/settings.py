"""Ray's settings for a tuner run: the environment variables Ray and Ray Tune read, set when
a driver connects (:func:`apply_settings`, never at import) or for the length of one
experiment (:func:`setting`). A user's own value of any of them wins."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

# Ray's settings for a tuner run, applied when it connects (never at import).
SETTINGS = {
    # Plain output: our own progress instead of Ray's tables.
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    "RAY_DEDUP_LOGS": "1",
    # The driver snapshots the experiment's state (every trial's status, the searcher, ASHA's
    # rungs) for `tuner resume`: Ray's "auto" period, at most 5% of the driver's time, but from
    # 0.5 s instead of Ray's 10 s floor (tuner.ray.tune_patches.snapshot_floor): as fresh as 0.5 s
    # while a snapshot is cheap, and never a cost that grows with the number of trials.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_GLOBAL_CHECKPOINT_S": "auto",
    # A local instance starts no idle workers ahead: Tune starts a new process for each trial's
    # actor anyway, and the prestarted ones only took the cores and the start-up slots those
    # need (~1 s of a run's start on 2 cores).
    "RAY_prestart_worker_first_driver": "0",
    # Token authentication, said explicitly: a local instance makes a token if there is none
    # (~/.ray/auth_token); a driver joining a cluster presents one. Never "disabled".
    "RAY_AUTH_MODE": "token",
    # A Ray process that finds a local socket not yet open (the raylet its object store's, as the
    # raylet starts; a driver or worker its raylet's) tries again after 10 ms instead of Ray's
    # whole second, as often as it takes within Ray's own 10 s (10 tries of 1 s there): the
    # raylet lost that second in one start in three on a 2-core laptop, before it registered
    # (BENCHMARKS.md i). The two go together (:data:`TOGETHER`). Ray logs each try after the
    # second as an INFO line of the process's log file: where a raylet never answers, up to
    # 1000 lines there over the 10 s instead of 10.
    "RAY_raylet_client_connect_timeout_milliseconds": "10",
    "RAY_raylet_client_num_connect_attempts": "1000",
}

# Settings that are one setting: where the user set either, neither is changed (a user's 1 s
# between tries with tuner's thousand tries would wait 1000 s for a socket that never opens).
TOGETHER = (("RAY_raylet_client_connect_timeout_milliseconds", "RAY_raylet_client_num_connect_attempts"),)


def defaults(env: Mapping[str, str]) -> dict[str, str]:
    """:data:`SETTINGS` that ``env`` (an environment) lacks: a user's own value wins, and for
    :data:`TOGETHER`, a user's value of any one of them keeps the others as Ray has them."""
    kept = {key for group in TOGETHER if any(k in env for k in group) for key in group}
    return {key: value for key, value in SETTINGS.items() if key not in env and key not in kept}


def apply_settings() -> None:
    """Set :data:`SETTINGS` in this process's environment (a user's own value wins; :func:`defaults`)."""
    os.environ.update(defaults(os.environ))


@contextlib.contextmanager
def setting(key: str, value: str) -> Iterator[None]:
    """One Ray setting in this process's environment for the duration of a block (an
    experiment), removed afterwards; a user's own value wins and is left as it is."""
    if key in os.environ:
        yield
        return
    os.environ[key] = value
    try:
        yield
    finally:
        os.environ.pop(key, None)
