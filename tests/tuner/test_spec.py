"""Every validation rule of the sweep file, each with its own failing input."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tiny_sweep
from tests.fixtures_data import write_npz
from tuner.errors import InputError
from tuner.spec import from_dict, load_sweep


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(InputError) as e:
        from_dict(raw, source="s.yaml")
    return e.value.problems


def one(raw: dict[str, Any]) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_tiny_sweep_is_valid_with_defaults_filled_in() -> None:
    s = from_dict(tiny_sweep(), source="s.yaml")
    assert s.train["weight_decay"] == 0.0 and s.train["lr_schedule"] == "constant" and s.train["seed"] == 0
    assert s.model["batch_norm"] is True and s.model["bn_momentum"] == 0.1
    assert s.data["val_fraction"] == 0.2 and s.data["split_seed"] == 0
    assert s.scheduler.name == "asha" and s.scheduler.brackets == 1
    assert [p.path for p in s.search.parameters] == ["train.lr", "train.momentum"]
    assert s.search.refine is None


def test_round_trip_through_to_dict() -> None:
    s = from_dict(tiny_sweep(**{"search.refine": {"rounds": 2}}), source="s.yaml")
    again = from_dict(yaml.safe_load(yaml.safe_dump(s.to_dict())), source="s.yaml")
    assert again.to_dict() == s.to_dict()


def test_shipped_sweeps_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "sweeps").glob("*.yaml")):
        load_sweep(path)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("train.epochs", "ten", "s.yaml: train.epochs: 'ten' must be an integer"),
        ("train.lr", [1], "s.yaml: train.lr: [1] must be a finite number"),
        ("train.lr", float("inf"), "s.yaml: train.lr: inf must be a finite number"),
        ("train.weight_decay", float("nan"), "s.yaml: train.weight_decay: nan must be a finite number"),
        ("model.batch_norm", "yes", "s.yaml: model.batch_norm: 'yes' must be true or false"),
        (
            "model.hidden",
            [64, "x"],
            "s.yaml: model.hidden: [64, 'x'] must be a non-empty list of integers in [1, 1000000]",
        ),
        (
            "model.hidden",
            [10**12],
            "s.yaml: model.hidden: [1000000000000] must be a non-empty list of integers in [1, 1000000]",
        ),
        ("train.momentum", 1.0, "s.yaml: train.momentum: 1.0 must lie in [0, 1)"),
        ("model.bn_momentum", 0.0, "s.yaml: model.bn_momentum: 0.0 must lie in (0, 1]"),
        ("data.val_fraction", 1.5, "s.yaml: data.val_fraction: 1.5 must lie in (0, 1)"),
        ("train.optimizer", "lion", "s.yaml: train.optimizer: 'lion' is not one of sgd, adam, adamw"),
        ("search.method", "bayes", "s.yaml: search.method: 'bayes' is not one of random, grid, tpe"),
        ("scheduler.name", "pbt", "s.yaml: scheduler.name: 'pbt' is not one of asha, none"),
        ("scheduler.reduction_factor", 1.5, "s.yaml: scheduler.reduction_factor: 1.5 must lie in [2, 1000]"),
        ("scheduler.reduction_factor", float("inf"), "s.yaml: scheduler.reduction_factor: inf must be a finite number"),
        ("search.num_samples", 0, "s.yaml: search.num_samples: 0 must lie in [1, 1000000]"),
        ("train.batch_size", 1, "s.yaml: train.batch_size: 1 must lie in [2, 1000000]"),
        (
            "resources.gpu",
            1.5,
            "s.yaml: resources.gpu: 1.5 must be 0 or at least 0.0001 (Ray's resource unit), and a whole number",
        ),
        ("resources.cpu", 0, "s.yaml: resources.cpu: 0.0 must lie in [0.0001, 10000]"),
        # below Ray's resource unit: Ray refused the trial's actor at run time, with its own words
        ("resources.cpu", 0.00001, "s.yaml: resources.cpu: 1e-05 must lie in [0.0001, 10000]"),
        ("resources.gpu", 1e-9, "s.yaml: resources.gpu: 1e-09 must be 0 or at least 0.0001 (Ray's resource unit)"),
        ("resources.cpu", float("inf"), "s.yaml: resources.cpu: inf must be a finite number"),
        ("data.seed", 1e30, "s.yaml: data.seed: 1e+30 must be an integer"),
        ("data.n_samples", 1e12, "s.yaml: data.n_samples: 1000000000000 must lie in [20, 10000000]"),
        ("name", "../../x", "s.yaml: name: '../../x' must be 1-100 letters"),
        ("name", "x" * 300, "s.yaml: name: 'xxxx"),
        ("search.refine", {"margin": float("inf")}, "s.yaml: search.refine.margin: inf must be a finite number"),
        ("metric", "accuracy", "s.yaml: metric: 'accuracy' is not a metric the built-in trainer reports"),
        ("model.kernel_size", 3, "s.yaml: model.kernel_size: unknown key"),
        ("trial_timeout", 0.5, "s.yaml: trial_timeout: 0.5 must lie in [1, 10000000]"),
        ("trial_timeout", -5, "s.yaml: trial_timeout: -5.0 must lie in [1, 10000000]"),
        ("trial_timeout", float("nan"), "s.yaml: trial_timeout: nan must be a finite number"),
        ("trial_timeout", "1h", "s.yaml: trial_timeout: '1h' must be a finite number"),
    ],
)
def test_each_field_rule(key: str, value: Any, expected: str) -> None:
    assert one(tiny_sweep(**{key: value})).startswith(expected)


def test_trial_timeout_is_kept_and_written_out_only_when_set() -> None:
    sweep = from_dict(tiny_sweep(trial_timeout=90), "s.yaml")
    assert sweep.trial_timeout == 90.0 and sweep.to_dict()["trial_timeout"] == 90.0
    assert from_dict(sweep.to_dict(), "s.yaml") == sweep
    plain = from_dict(tiny_sweep(), "s.yaml")
    assert plain.trial_timeout is None and "trial_timeout" not in plain.to_dict()


def test_grace_period_above_epochs() -> None:
    assert (
        one(tiny_sweep(**{"scheduler.grace_period": 5}))
        == "s.yaml: scheduler.grace_period: 5 must be <= train.epochs (3)"
    )


def test_mode_contradicting_the_metric() -> None:
    assert one(tiny_sweep(mode="min")) == "s.yaml: mode: 'min' contradicts metric val_acc (better is max)"
    assert from_dict(tiny_sweep(metric="val_loss", mode=None), source="s.yaml").mode == "min"


def test_unknown_keys_everywhere_with_a_suggestion() -> None:
    raw = tiny_sweep(**{"train.epocs": 3, "sheduler": {}})
    raw["search"]["parameters"]["train.lr"]["mn"] = 1
    found = problems(raw)
    assert any(p.startswith("s.yaml: train.epocs: unknown key (did you mean 'epochs'?") for p in found), found
    assert any(p.startswith("s.yaml: sheduler: unknown key (did you mean 'scheduler'?") for p in found)
    assert any(p.startswith("s.yaml: search.parameters.train.lr.mn: unknown key") for p in found)


def test_every_problem_is_reported_at_once() -> None:
    raw = tiny_sweep(**{"train.epochs": 0, "train.lr": -1, "search.method": "x", "model.name": "resnet"})
    found = problems(raw)
    assert len(found) == 4
    assert all(line.startswith("s.yaml: ") and "\n" not in line for line in found)


@pytest.mark.parametrize(
    "param, expected",
    [
        (
            {"distribution": "log_uniform", "min": 0, "max": 1},
            "s.yaml: search.parameters.train.lr.min: 0.0 must be > 0 for log_uniform",
        ),
        (
            {"distribution": "log_uniform", "min": 1e-2, "max": 1e-3},
            "s.yaml: search.parameters.train.lr.min: 0.01 must be < max (0.001)",
        ),
        (
            {"distribution": "uniform", "min": 0.5, "max": 0.5},
            "s.yaml: search.parameters.train.lr.min: 0.5 must be < max (0.5)",
        ),
        (
            {"distribution": "gaussian", "min": 0.1, "max": 1},
            "s.yaml: search.parameters.train.lr.distribution: 'gaussian' is not a distribution",
        ),
        (
            {"distribution": "log_uniform", "min": 1e-3},
            "s.yaml: search.parameters.train.lr.max: is required for log_uniform",
        ),
        (
            {"distribution": "log_uniform", "min": "small", "max": 1},
            "s.yaml: search.parameters.train.lr.min: 'small' must be a finite number",
        ),
        (
            {"min": 0.1, "max": 1},
            "s.yaml: search.parameters.train.lr: needs a distribution (with min and max) or values",
        ),
        ({"values": []}, "s.yaml: search.parameters.train.lr.values: [] must be a non-empty list"),
        (
            {"values": [0.1], "distribution": "uniform"},
            "s.yaml: search.parameters.train.lr: takes values or a distribution",
        ),
        ({"values": [0.1, -1]}, "s.yaml: search.parameters.train.lr.values[1]: -1.0 must lie in (0, 1000000]"),
        (0.1, "s.yaml: search.parameters.train.lr: 0.1 must be a mapping"),
    ],
)
def test_parameter_rules(param: Any, expected: str) -> None:
    assert one(tiny_sweep(**{"search.parameters": {"train.lr": param}})).startswith(expected)


@pytest.mark.parametrize("bounds", [(0.9, 1.0), (0.0, 0.9), (-0.5, 0.5), (0.99, 1.5)])
def test_one_minus_log_uniform_needs_beta_inside_zero_one(bounds: tuple[float, float]) -> None:
    raw = tiny_sweep(
        **{
            "search.parameters": {
                "train.momentum": {"distribution": "one_minus_log_uniform", "min": bounds[0], "max": bounds[1]}
            }
        }
    )
    found = problems(raw)
    assert any("must lie in (0, 1) for one_minus_log_uniform" in p for p in found), found


@pytest.mark.parametrize(
    "path, expected",
    [
        ("train.lrate", "s.yaml: search.parameters.train.lrate: is not a key of train (did you mean train.lr?)"),
        ("optim.lr", "s.yaml: search.parameters.optim.lr: is not a path into model or train"),
        ("model.depth", "s.yaml: search.parameters.model.depth: is not a key of model"),
        ("train.lr.x", "s.yaml: search.parameters.train.lr.x: is not a key of train"),
        ("data.val_fraction", "s.yaml: search.parameters.data.val_fraction: data cannot be searched"),
        ("train.epochs", "s.yaml: search.parameters.train.epochs: train.epochs is ASHA's max_t"),
    ],
)
def test_parameter_paths_must_exist(path: str, expected: str) -> None:
    raw = tiny_sweep(**{"search.parameters": {path: {"values": [1, 2]}}})
    assert any(p.startswith(expected) for p in problems(raw)), problems(raw)


def test_parameter_values_are_checked_against_their_key() -> None:
    raw = tiny_sweep(**{"search.parameters": {"train.batch_size": {"values": [32, "big"]}}})
    assert one(raw) == "s.yaml: search.parameters.train.batch_size.values[1]: 'big' must be an integer"
    raw = tiny_sweep(
        **{"search.parameters": {"train.batch_size": {"distribution": "log_uniform", "min": 8, "max": 64}}}
    )
    assert "is an integer: use int_uniform, int_log_uniform or values" in one(raw)
    raw = tiny_sweep(**{"search.parameters": {"train.momentum": {"distribution": "uniform", "min": 0.5, "max": 1.2}}})
    assert one(raw) == "s.yaml: search.parameters.train.momentum.max: 1.2 must lie in [0, 1)"
    raw = tiny_sweep(**{"search.parameters": {"train.optimizer": {"values": ["sgd", "rmsprop"]}}})
    assert one(raw) == "s.yaml: search.parameters.train.optimizer.values[1]: 'rmsprop' is not one of sgd, adam, adamw"


def test_grid_needs_grid_points_and_grid_points_need_grid() -> None:
    raw = tiny_sweep(**{"search.method": "grid"})
    del raw["search"]["num_samples"]
    assert all("needs grid_points (or values) for search.method grid" in p for p in problems(raw))
    raw = tiny_sweep(
        **{"search.parameters": {"train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 1, "grid_points": 3}}}
    )
    assert one(raw).endswith("grid_points: 3 is only used by search.method grid")
    raw = tiny_sweep(
        **{
            "search.method": "grid",
            "search.num_samples": 1,
            "search.parameters": {"train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 1, "grid_points": 1}},
        }
    )
    assert one(raw).endswith("grid_points: 1 must lie in [2, 10000]")
    raw = tiny_sweep(
        **{
            "search.method": "grid",
            "search.parameters": {"train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 1, "grid_points": 3}},
        }
    )
    del raw["search"]["num_samples"]
    assert from_dict(raw, source="s.yaml").search.num_samples == 1  # one pass over the grid


def test_unknown_model_and_data_names() -> None:
    assert one(tiny_sweep(**{"model.name": "mpl"})).startswith(
        "s.yaml: model.name: 'mpl' is not a model (did you mean 'mlp'?"
    )
    found = problems(tiny_sweep(**{"data": {"name": "mnist"}}))
    assert found[0].startswith("s.yaml: data.name: 'mnist' is not a data source (did you mean 'mnist1d'?")


def test_callable_names_must_import() -> None:
    assert "cannot be imported" in one(tiny_sweep(**{"model.name": "no_such_pkg_xyz:net"}))
    assert "has no function 'absent'" in one(tiny_sweep(**{"data": {"name": "tests.fixtures_data:absent"}}))
    s = from_dict(
        tiny_sweep(
            **{
                "model": {"name": "tests.fixtures_data:tiny_net", "kwargs": {"width": 4}},
                "search.parameters": {"model.kwargs.width": {"values": [4, 8]}},
            }
        ),
        source="s.yaml",
    )
    assert s.model["kwargs"] == {"width": 4}


def test_missing_npz_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = one(tiny_sweep(data={"name": "npz", "path": "data/mine.npz"}))
    assert found.startswith("s.yaml: data.path: 'data/mine.npz' no such file (looked in ")
    assert one(tiny_sweep(data={"name": "npz"})) == "s.yaml: data.path: is required (a string)"
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "mine.npz")
    s = from_dict(tiny_sweep(data={"name": "npz", "path": "data/mine.npz"}), source="s.yaml")
    assert s.data["path"] == str((tmp_path / "data" / "mine.npz").resolve())


def test_a_data_path_that_is_a_loop_of_links_says_so_not_no_such_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's ``is_file`` and ``exists`` answer False to a loop of links: the file is there
    but cannot be reached, which is not "no such file"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loopa.npz").symlink_to("loopb")
    (tmp_path / "loopb").symlink_to("loopa.npz")
    (tmp_path / "loopdir").symlink_to("loopdir")
    assert one(tiny_sweep(data={"name": "npz", "path": "loopa.npz"})) == (
        "s.yaml: data.path: 'loopa.npz' cannot read (Too many levels of symbolic links)"
    )
    assert one(tiny_sweep(data={"name": "npz", "path": "loopdir/x.npz"})) == (
        "s.yaml: data.path: 'loopdir/x.npz' cannot read (Too many levels of symbolic links)"
    )


def test_a_run_directory_that_is_a_loop_of_links_says_so(tmp_path: Path) -> None:
    from tuner.results import load_run

    (tmp_path / "run").symlink_to("run")
    with pytest.raises(InputError) as e:
        load_run(tmp_path / "run")
    assert str(e.value) == f"{tmp_path}/run: cannot read (Too many levels of symbolic links)"
    with pytest.raises(InputError, match="no such run directory"):
        load_run(tmp_path / "absent")


def test_npz_path_relative_to_the_sweep_file(tmp_path: Path, write_sweep: Callable[..., Path]) -> None:
    write_npz(tmp_path / "arrays.npz")
    path = write_sweep(data={"name": "npz", "path": "arrays.npz"})
    assert load_sweep(path).data["path"] == str((tmp_path / "arrays.npz").resolve())


def test_missing_data_section_and_wrong_section_types() -> None:
    raw = tiny_sweep()
    del raw["data"]
    assert one(raw) == "s.yaml: data: is required (a mapping) for the built-in trainer"
    assert one(tiny_sweep(train=[1, 2])) == "s.yaml: train: [1, 2] must be a mapping"


def test_floats_written_without_a_dot_are_numbers() -> None:
    s = from_dict(
        tiny_sweep(
            **{
                "train.lr": "1e-3",
                "search.parameters": {"train.lr": {"distribution": "log_uniform", "min": "1e-4", "max": "1e-1"}},
            }
        ),
        source="s.yaml",
    )
    assert s.train["lr"] == 1e-3 and s.search.parameters[0].low == 1e-4


def test_invalid_yaml_reports_the_line(write_sweep: Callable[..., Path]) -> None:
    path = write_sweep("name: x\ntrain:\n  epochs: 3\n  lr: [0.1\nmodel: {}\n")
    with pytest.raises(InputError) as e:
        load_sweep(path)
    (line,) = e.value.problems
    assert line.startswith(f"{path}:5:") and "invalid YAML" in line


@pytest.mark.parametrize(
    "text, expected", [("", "the file is empty"), ("- a\n- b\n", "the top level must be a mapping")]
)
def test_empty_or_non_mapping_files(write_sweep: Callable[..., Path], text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_sweep(write_sweep(text))


def test_missing_file() -> None:
    with pytest.raises(InputError, match="no_such.yaml: no such file"):
        load_sweep("no_such.yaml")


def test_overrides_and_name_default(write_sweep: Callable[..., Path]) -> None:
    raw = tiny_sweep()
    del raw["name"]
    path = write_sweep(raw, name="my-sweep.yaml")
    assert load_sweep(path).name == "my-sweep"
    s = load_sweep(path, {"name": "other", "search.num_samples": 7})
    assert s.name == "other" and s.search.num_samples == 7
    with pytest.raises(InputError, match=r"search.num_samples: 0 must lie in \[1, 1000000\]"):
        load_sweep(path, {"search.num_samples": 0})
    assert len(load_sweep(path).sha256) == 64


@pytest.mark.parametrize(
    "grace, eta, max_t, brackets, expected",
    [
        (1, 3, 20, 1, [1, 3, 9]),
        (2, 3, 20, 1, [2, 6, 18]),
        (1, 2, 4, 1, [1, 2, 4]),
        (5, 3, 5, 1, [5]),
        (1, 2.5, 20, 1, [1, 3, 7, 16]),  # 2.5, 6.25, 15.6: ASHA judges at the first epoch past each, not int(2.5)
        (1, 3, 27, 2, [1, 3, 9, 27]),
    ],
)
def test_milestones_are_the_epochs_rays_asha_judges_at(
    grace: int, eta: float, max_t: int, brackets: int, expected: list[int]
) -> None:
    from types import SimpleNamespace

    from tuner.ray.asha import scheduler
    from tuner.spec import SchedulerSpec

    spec = SchedulerSpec("asha", grace, eta, brackets, max_t)
    assert spec.milestones() == expected
    # feed Ray's own ASHA one trial per epoch: it records (judges) a trial exactly at these epochs
    asha = scheduler(spec)
    asha.set_search_properties("val_acc", "max")
    judged = set()
    for b, bracket in enumerate(asha._brackets):
        t = SimpleNamespace(trial_id=f"t{b}")
        for epoch in range(1, max_t + 1):
            before = sum(len(rec) for _, rec in bracket._rungs)
            bracket.on_result(t, epoch, 0.5)
            if sum(len(rec) for _, rec in bracket._rungs) > before:
                judged.add(epoch)
    assert sorted(judged) == expected
    assert SchedulerSpec("none", grace, eta, brackets, max_t).milestones() == []


# -- the user's functions checked before anything runs ------------------------------------------

USER_FUNCTIONS = """
import torch


def fit(config, run):
    run.report({"score": 1.0})


def fit_more(config, run, extra=1, *rest, **more):
    run.report({"score": 1.0})


def fit_any(*args):
    args[1].report({"score": 1.0})


def one_param(config):
    pass


def keyword_only(*, config, run):
    pass


def three_params(config, run, extra):
    pass


def generator(config, run):
    yield run.report({"score": 1.0})


async def coroutine(config, run):
    run.report({"score": 1.0})


async def async_generator(config, run):
    yield run.report({"score": 1.0})


class Trainer:
    def __init__(self, config, run):
        run.report({"score": 1.0})


def net(input_shape, num_outputs, width=4):
    return torch.nn.Linear(input_shape[0], num_outputs)


def net_one_param(input_shape):
    return torch.nn.Linear(input_shape[0], 3)
"""


@pytest.fixture
def user_functions(tmp_path: Path) -> Any:
    """``proj_fns``: every shape of trial and model function, beside the sweep file."""
    import importlib
    import sys

    (tmp_path / "proj_fns.py").write_text(USER_FUNCTIONS)
    yield tmp_path
    sys.modules.pop("proj_fns", None)
    importlib.invalidate_caches()


def function_problems(folder: Path, name: str) -> list[str]:
    raw = {
        "metric": "score",
        "mode": "max",
        "function": f"proj_fns:{name}",
        "config": {"lr": 0.1},
        "scheduler": {"name": "asha", "max_t": 2},
    }
    try:
        from_dict(raw, source="s.yaml", base_dir=folder)
    except InputError as e:
        return e.problems
    return []


@pytest.mark.parametrize("name", ["fit", "fit_more", "fit_any", "Trainer"])
def test_a_function_callable_as_fit_config_run_is_accepted(user_functions: Path, name: str) -> None:
    assert function_problems(user_functions, name) == []


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("one_param", "cannot be called as one_param(config, run): too many positional arguments (it must take"),
        ("keyword_only", "cannot be called as keyword_only(config, run): too many positional arguments"),
        ("three_params", "cannot be called as three_params(config, run): missing a required argument: 'extra'"),
        ("generator", "is a generator function (it yields): calling generator(config, run) would run none of it"),
        ("coroutine", "is an async function (async def): tuner calls coroutine(config, run) as a plain function"),
        ("async_generator", "is an async function (an async generator)"),
    ],
)
def test_a_function_tuner_cannot_call_as_fit_config_run_is_refused_up_front(
    user_functions: Path, name: str, rule: str
) -> None:
    (line,) = function_problems(user_functions, name)
    assert line.startswith(f"s.yaml: function: 'proj_fns:{name}' {rule}"), line


def test_a_model_function_tuner_cannot_call_is_refused_up_front(user_functions: Path) -> None:
    def model_problems(model: dict[str, Any]) -> list[str]:
        try:
            from_dict(tiny_sweep(model=model), source="s.yaml", base_dir=user_functions)
        except InputError as e:
            return e.problems
        return []

    assert model_problems({"name": "proj_fns:net"}) == []
    assert model_problems({"name": "proj_fns:net", "kwargs": {"width": 8}}) == []
    assert model_problems({"name": "proj_fns:net_one_param"}) == [
        "s.yaml: model.name: 'proj_fns:net_one_param' cannot be called as net_one_param(input_shape, num_outputs): "
        "too many positional arguments"
    ]
    assert model_problems({"name": "proj_fns:net", "kwargs": {"depth": 2}}) == [
        "s.yaml: model.name: 'proj_fns:net' cannot be called as net(input_shape, num_outputs, **model.kwargs): "
        "got an unexpected keyword argument 'depth'"
    ]


def test_a_pair_that_is_not_key_value_gets_an_example_of_its_own_flag() -> None:
    """``--data foo`` was told ``e.g. --data train.epochs=5``, itself no data key."""
    from tuner.spec import parse_assignments

    with pytest.raises(InputError) as e:
        parse_assignments(["foo"], "--data")
    assert str(e.value) == "--data: 'foo' must be KEY=VALUE (e.g. --data seed=7)"
    with pytest.raises(InputError) as e:
        parse_assignments(["=1"], "--set")
    assert str(e.value) == "--set: '=1' must be KEY=VALUE (e.g. --set train.epochs=5)"


@pytest.mark.parametrize(
    "parameters",
    [{}, {"train.lr": {"values": [0.1]}}, {"train.lr": {"values": [0.1]}, "train.batch_size": {"values": [32]}}],
)
def test_refine_rounds_with_nothing_to_narrow_are_refused(parameters: dict[str, Any]) -> None:
    """They ran the one configuration again and again, with the same seed."""
    problem = one(tiny_sweep(**{"search.parameters": parameters, "search.refine": {"rounds": 2}}))
    assert problem == "s.yaml: search.refine: needs a searched parameter with more than one value to narrow"
    assert from_dict(tiny_sweep(**{"search.parameters": parameters}), source="s.yaml").search.refine is None


def test_a_grid_runs_each_point_once_and_says_how_many_trials_that_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """num_samples 2 over a 6-point grid: validate and the run's header said 2 trials, the plan
    12, and 6 ran."""
    from tuner.cli import main
    from tuner.rounds import plan

    grid = {"train.lr": {"values": [0.01, 0.1, 0.3]}, "train.batch_size": {"values": [32, 64]}}
    raw = tiny_sweep(**{"search.method": "grid", "search.parameters": grid, "search.num_samples": 2})
    assert one(raw) == (
        "s.yaml: search.num_samples: 2 a grid runs each of its points once: leave num_samples out (tuner retest "
        "re-runs the best with fresh seeds)"
    )
    del raw["search"]["num_samples"]
    assert plan(from_dict(raw, source="s.yaml")) == [6]
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0
    assert ", 6 trials, " in capsys.readouterr().out


# -- probe3: a value validate accepts must not fail the run ------------------------------------


def fn_sweep(config: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """A function sweep over ``config`` (a plain function, importable from the tests)."""
    return {
        "metric": "score",
        "mode": "max",
        "function": "tests.fixtures_plain:torch_free_fit",
        "config": config,
        "search": {"parameters": parameters},
        "scheduler": {"name": "none"},
    }


def test_each_searched_model_name_gets_the_rule_of_model_name(tmp_path: Path) -> None:
    """``{values: [bogus, "nope.mod:fn"]}`` validated, then every trial failed."""
    (tmp_path / "nets.py").write_text(
        "def net(input_shape, num_outputs):\n    return None\n\ndef one_arg(x):\n    return None\n"
    )
    values = ["mlp", "cnn", "bogus", "nope.mod:fn", "nets:net", "nets:one_arg"]
    raw = tiny_sweep(**{"search.parameters": {"model.name": {"values": values}}})
    with pytest.raises(InputError) as e:
        from_dict(raw, source="s.yaml", base_dir=tmp_path)
    found = e.value.problems
    assert [p.split(": ", 2)[1] for p in found] == [
        "search.parameters.model.name.values[2]",
        "search.parameters.model.name.values[3]",
        "search.parameters.model.name.values[5]",
    ], found
    assert "'bogus' is not a model (one of mlp, cnn or 'package.module:function')" in found[0]
    assert "'nope.mod:fn' cannot be imported" in found[1]
    assert "cannot be called as one_arg(input_shape, num_outputs)" in found[2]
    raw["search"]["parameters"]["model.name"]["values"] = ["mlp", "nets:net"]
    sweep = from_dict(raw, source="s.yaml", base_dir=tmp_path)
    assert "nets:net" in sweep.code_refs()  # imported and shipped as the top-level one is


def test_train_task_cannot_be_searched() -> None:
    line = one(tiny_sweep(**{"search.parameters": {"train.task": {"values": ["classification", "regression"]}}}))
    assert line == (
        "s.yaml: search.parameters.train.task: train.task cannot be searched: the task follows the data "
        "and the metric (set it once in train)"
    )


@pytest.mark.parametrize(
    "value, rule",
    [
        (float("nan"), "nan must be a finite number (NaN and infinity are not JSON data)"),
        (float("inf"), "inf must be a finite number"),
        ([1, float("-inf")], "[1, -inf] must be a finite number"),
        ({"k": float("nan")}, "{'k': nan} must be a finite number"),
        (datetime.date(2020, 1, 1), "2020-01-01 is not plain JSON data (it holds a date)"),
        (b"hi", "b'hi' is not plain JSON data (it holds a bytes)"),
        ({"a"}, "{'a'} is not plain JSON data (it holds a set)"),
        ({1: 2}, "{1: 2} has the key 1: mapping keys must be strings (JSON data)"),
    ],
)
def test_searched_values_must_be_plain_json_data(value: Any, rule: str) -> None:
    """NaN, dates, bytes and sets validated under a config key of any type, then broke the
    journal, params.json and the export after every trial had trained."""
    for default in (1, [1], {"x": 1}):
        line = one(fn_sweep({"a": default}, {"a": {"values": [value, 2]}}))
        assert line == f"s.yaml: search.parameters.a.values[0]: {rule}" or line.startswith(
            f"s.yaml: search.parameters.a.values[0]: {rule}"
        ), line


def test_config_defaults_must_be_plain_json_data() -> None:
    found = problems(fn_sweep({"a": {"b": float("nan")}, "d": datetime.date(2020, 1, 1), "ok": None}, {}))
    assert [p.split(": ", 2)[1] for p in found] == ["config.a.b", "config.d"], found


def test_null_in_values_gets_a_rule_of_its_own() -> None:
    """It read ``values[0]: None must be set (a value)``."""
    line = one(fn_sweep({"a": 1}, {"a": {"values": [None, 1]}}))
    assert (
        line
        == "s.yaml: search.parameters.a.values[0]: null is not a value a parameter can take (leave it out of values)"
    )
    raw = tiny_sweep(**{"model.name": "cnn", "search.parameters": {"model.kernel_size": {"values": [None, 3]}}})
    assert from_dict(raw, source="s.yaml").search.parameters[0].values == (None, 3)  # null: the default


def test_a_value_listed_twice_is_refused() -> None:
    """A grid ran the point twice; random search drew it twice as often."""
    line = one(tiny_sweep(**{"search.parameters": {"train.lr": {"values": [0.1, 0.2, "1e-1"]}}}))
    assert line == "s.yaml: search.parameters.train.lr.values[2]: 0.1 repeats values[0]: each value must be listed once"
    assert "values[1]: 1.0 repeats values[0]" in one(fn_sweep({"a": 1}, {"a": {"values": [1, 1.0]}}))
    assert "values[2]: [1] repeats values[0]" in one(fn_sweep({"a": [1]}, {"a": {"values": [[1], [2], [1]]}}))
    sweep = from_dict(fn_sweep({"a": 1}, {"a": {"values": [1, True, "1", [1], [True]]}}), source="s.yaml")
    assert len(sweep.search.parameters[0].values) == 5  # 1, True and "1" are three choices


@pytest.mark.parametrize("source", ["diabetes", "regression"])
def test_regression_sources_default_to_a_regression_metric(source: str) -> None:
    """``data: {name: diabetes}`` validated with val_acc, then try and run refused it."""
    raw = tiny_sweep(**{"data": {"name": source}})
    del raw["metric"], raw["mode"]
    sweep = from_dict(raw, source="s.yaml")
    assert (sweep.metric, sweep.mode) == ("val_rmse", "min")
    raw["metric"] = "val_acc"
    assert one(raw).startswith(
        f"s.yaml: metric: 'val_acc' is not a metric the built-in trainer reports on regression data ({source})"
    )


def test_classification_sources_refuse_a_regression_metric() -> None:
    line = one(tiny_sweep(metric="val_rmse", mode="min"))
    assert line.startswith("s.yaml: metric: 'val_rmse' is not a metric the built-in trainer reports on classification")
    from_dict(tiny_sweep(metric="val_rmse", mode="min", **{"train.task": "regression"}), source="s.yaml")


def test_the_task_of_each_builtin_source_is_what_its_targets_give() -> None:
    from tuner.models.data import SOURCE_TASKS, load

    for name, task in SOURCE_TASKS.items():
        if name != "mnist1d":  # generated and cached: its labels are class indices as digits' are
            assert load({"name": name}).task == task, name


def test_set_addresses_a_search_parameter_by_its_own_dotted_name() -> None:
    """``--set search.parameters.train.lr.min=0.5`` split ``train.lr`` into two mappings."""
    from tuner.spec import apply_overrides

    raw = tiny_sweep()
    apply_overrides(
        raw,
        {
            "search.parameters.train.lr.min": 0.25,
            "search.parameters.train.beta1": {"values": [0.9, 0.99]},
            "search.parameters.train.momentum": {"values": [0.5]},
        },
    )
    params = raw["search"]["parameters"]
    assert params["train.lr"] == {"distribution": "log_uniform", "min": 0.25, "max": 0.5}
    assert params["train.beta1"] == {"values": [0.9, 0.99]} and params["train.momentum"] == {"values": [0.5]}
    from_dict(raw, source="s.yaml")
    with pytest.raises(InputError) as e:
        apply_overrides(tiny_sweep(), {"search.parameters.train.beta2.max": 0.5}, "s.yaml")
    assert e.value.problems == [
        "s.yaml: search.parameters.train.beta2.max: 0.5 addresses no parameter of search.parameters (it has: "
        "train.lr, train.momentum): search.parameters.PATH.FIELD=V changes one of a parameter's fields "
        "(train.lr.max=0.5), search.parameters.PATH={...} adds or replaces a parameter"
    ]


def test_a_set_mapping_keeps_an_earlier_set_inside_it() -> None:
    """``--set train.lr=0.5 --set train={}`` silently dropped train.lr."""
    from tuner.spec import apply_overrides

    for overrides in ({"train.lr": 0.5, "train": {}}, {"train": {}, "train.lr": 0.5}):
        raw = tiny_sweep()
        apply_overrides(raw, overrides)
        assert raw["train"] == {"lr": 0.5}


@pytest.mark.parametrize("pair", [".train=1", "train.=1", "train..lr=1", "search.parameters.=1", ".=1"])
def test_a_key_with_an_empty_part_is_not_key_value(pair: str) -> None:
    """``.train=1`` was blamed on the file, naming no key."""
    from tuner.spec import parse_assignments, set_dotted

    with pytest.raises(InputError) as e:
        parse_assignments([pair], "--set")
    assert str(e.value) == f"--set: {pair!r} must be KEY=VALUE (e.g. --set train.epochs=5)"
    with pytest.raises(InputError, match="is not a key: a dotted path with no empty part"):
        set_dotted({}, pair.partition("=")[0], 1)
