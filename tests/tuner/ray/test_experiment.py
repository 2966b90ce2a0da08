"""The experiment's settings that keep the driver's cost per trial flat."""

from __future__ import annotations

from typing import Any

import pytest


def settings(cpu: float = 1.0, gpu: float = 0.0, num_samples: int = 100, max_concurrent: int = 0) -> Any:
    from tuner.ray.experiment import ExperimentSettings
    from tuner.ray.search import RoundSearcher
    from tuner.space import Parameter
    from tuner.spec import SchedulerSpec

    searcher = RoundSearcher([Parameter("x", "uniform", 0.0, 1.0)], "random", [num_samples], 0, "m", "max")
    searcher.max_concurrent = max_concurrent
    return ExperimentSettings(
        storage="/nowhere",
        name="trials",
        trial_args={},
        searcher=searcher,
        num_samples=num_samples,
        metric="m",
        mode="max",
        scheduler=SchedulerSpec("none", 1, 3, 1, 1),
        cpu=cpu,
        gpu=gpu,
        max_failures=0,
    )


@pytest.mark.parametrize(
    "resources, kwargs, expected",
    [
        ({"CPU": 16.0}, {}, 16),  # Ray's own rule for a custom searcher: 1
        ({"CPU": 16.0}, {"cpu": 2.0}, 8),
        ({"CPU": 16.0, "GPU": 2.0}, {"cpu": 1.0, "gpu": 0.25}, 8),  # the GPUs bind first
        ({"CPU": 16.0}, {"max_concurrent": 3}, 3),
        ({"CPU": 16.0}, {"num_samples": 5}, 5),
        ({"CPU": 1.0}, {"cpu": 4.0}, 1),  # never 0 (a trial that cannot fit is said elsewhere)
    ],
)
def test_tune_creates_as_many_trials_ahead_as_fit_at_once(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, float], kwargs: dict[str, Any], expected: int
) -> None:
    import os

    import ray

    from tuner.ray import experiment

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    s = settings(**kwargs)
    assert experiment.max_pending(s) == expected
    with experiment.pending_trials(s):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == str(expected)
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "1")  # the user's own value wins
    with experiment.pending_trials(s):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "1"


def test_an_experiment_runs_with_every_replacement_of_tunes_internals_and_leaves_ray_s_own_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    import ray
    from ray.air._internal import usage
    from ray.air.execution._internal.actor_manager import RayActorManager
    from ray.air.execution.resources.fixed import FixedResourceManager
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis
    from ray.tune.execution import class_cache, tune_controller
    from ray.tune.experiment import trial as trial_module

    from tuner.ray import experiment, tune_patches

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)  # a local instance
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    monkeypatch.delenv("TUNE_RESULT_BUFFER_LENGTH", raising=False)
    pieces = [
        (trial_module, "get_trainable_cls"),
        (trial_module, "validate_trainable"),
        (tune_controller.TuneController, "_maybe_reuse_cached_actor"),
        (tune_controller, "PlacementGroupResourceManager"),
        (RayActorManager, "_try_start_actors"),
        (ExperimentAnalysis, "_fetch_trial_dataframes"),
        (usage, "tag_callbacks"),
        (class_cache._ActorClassCache, "get"),
    ]
    ray_own = [getattr(owner, name) for owner, name in pieces]
    with experiment.driver_settings(settings()):
        assert all(getattr(owner, name) is not own for (owner, name), own in zip(pieces, ray_own, strict=True))
        assert tune_controller.PlacementGroupResourceManager is FixedResourceManager
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "1"  # Ray not started: one slot
        assert "TUNE_RESULT_BUFFER_LENGTH" in os.environ
    assert [getattr(owner, name) for owner, name in pieces] == ray_own
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ and "TUNE_RESULT_BUFFER_LENGTH" not in os.environ


@pytest.mark.parametrize(
    "files, expected",
    [
        ({}, False),  # no snapshot at all: nothing to continue
        ({"experiment_state-2026-01-01_00-00-00.json": '{"trial_data": [], "runner_data": {}}'}, False),
        ({"experiment_state-2026-01-01_00-00-00.json": '{"trial_data": [["{}", "x"]], "runner_data": {}}'}, True),
        (  # the newest snapshot decides
            {
                "experiment_state-2026-01-01_00-00-00.json": '{"trial_data": [["{}", "x"]]}',
                "experiment_state-2026-01-02_00-00-00.json": '{"trial_data": []}',
            },
            False,
        ),
        ({"experiment_state-2026-01-01_00-00-00.json": "{not json"}, True),  # Tune's restore says what is wrong
        ({"experiment_state-2026-01-01_00-00-00.json": "[]"}, True),
        ({"experiment_state-2026-01-01_00-00-00.json": " " * (1 << 20)}, True),  # never read whole
    ],
)
def test_a_saved_experiment_is_continued_only_where_its_newest_snapshot_names_a_trial(
    tmp_path: Any, files: dict[str, str], expected: bool
) -> None:
    from tuner.ray import experiment

    folder = tmp_path / "trials"
    folder.mkdir()
    (folder / "tuner.pkl").write_bytes(b"")  # what Tune's can_restore looks for
    for name, text in files.items():
        (folder / name).write_text(text)
    assert experiment.can_resume(tmp_path, "trials") is expected
    assert experiment.can_resume(tmp_path, "elsewhere") is False


def test_a_snapshot_that_is_not_a_regular_file_is_refused_in_one_line(tmp_path: Any) -> None:
    """A named pipe where the newest snapshot is would hold a resume for ever (Tune reads it too)."""
    import os

    from tuner.errors import InputError
    from tuner.ray import experiment

    folder = tmp_path / "trials"
    folder.mkdir()
    (folder / "tuner.pkl").write_bytes(b"")
    os.mkfifo(folder / "experiment_state-2026-01-01_00-00-00.json")
    with pytest.raises(InputError, match=r"experiment_state-2026-01-01_00-00-00\.json: is not a regular file"):
        experiment.can_resume(tmp_path, "trials")
