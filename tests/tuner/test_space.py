"""Distributions on their own scales, checked statistically (Kolmogorov-Smirnov, chi-square)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tuner.ray.search import sample
from tuner.space import Parameter, apply_params, get_path, grid_size

N = 4000
ALPHA = 1e-3  # a correct sampler fails one of these tests once in a thousand runs (seeds are fixed)


def ray_samples(param: Parameter, n: int = N, seed: int = 0) -> np.ndarray:
    """Samples through Ray Tune's random search, exactly as a sweep draws them."""
    return np.array([c[param.path] for c in list(sample([param], "random", n, seed))])


def test_one_minus_log_uniform_draws_log10_one_minus_beta_uniformly() -> None:
    p = Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999)
    beta = ray_samples(p)
    assert beta.min() >= 0.9 and beta.max() <= 0.999  # the configuration holds β, never 1 - β
    z = np.log10(1 - beta)
    assert stats.kstest(z, stats.uniform(loc=-3, scale=2).cdf).pvalue > ALPHA
    # and β itself is far from uniform on [0.9, 0.999]: most mass sits near 0.9..0.99
    assert stats.kstest(beta, stats.uniform(loc=0.9, scale=0.099).cdf).pvalue < ALPHA
    assert abs(np.mean(beta > 0.99) - 0.5) < 0.05  # half the draws have 1 - β < 0.01


def test_log_uniform_draws_log10_uniformly() -> None:
    p = Parameter("train.lr", "log_uniform", 1e-4, 1.0)
    x = ray_samples(p)
    assert stats.kstest(np.log10(x), stats.uniform(loc=-4, scale=4).cdf).pvalue > ALPHA
    assert abs(np.mean(x < 1e-2) - 0.5) < 0.05


def test_uniform() -> None:
    x = ray_samples(Parameter("train.lr", "uniform", 0.2, 0.7))
    assert stats.kstest(x, stats.uniform(loc=0.2, scale=0.5).cdf).pvalue > ALPHA


def test_int_uniform_covers_both_ends_evenly() -> None:
    x = ray_samples(Parameter("train.batch_size", "int_uniform", 2, 6))
    assert all(isinstance(v, (int, np.integer)) for v in x)
    counts = np.bincount(x.astype(int), minlength=7)[2:]
    assert stats.chisquare(counts).pvalue > ALPHA


def test_int_log_uniform_is_uniform_in_log() -> None:
    x = ray_samples(Parameter("train.batch_size", "int_log_uniform", 8, 512))
    assert x.min() >= 8 and x.max() <= 512 and all(float(v).is_integer() for v in x)
    assert abs(np.mean(x < 64) - 0.5) < 0.05  # log-midpoint of [8, 513) is ~64


def test_values_are_drawn_evenly_and_keep_their_type() -> None:
    p = Parameter("model.hidden", values=([64, 64], [100, 100], [256]))
    x = [c["model.hidden"] for c in list(sample([p], "random", N, 0))]
    assert all(isinstance(v, list) for v in x)
    counts = [sum(v == w for v in x) for w in p.values]  # type: ignore[union-attr]
    assert stats.chisquare(counts).pvalue > ALPHA


def test_parameter_sample_matches_the_same_law() -> None:
    p = Parameter("train.momentum", "one_minus_log_uniform", 0.5, 0.99)
    beta = np.array(p.sample(np.random.default_rng(0), size=N))
    lo, hi = math.log10(0.01), math.log10(0.5)
    assert stats.kstest(np.log10(1 - beta), stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue > ALPHA


def test_same_seed_same_configurations_other_seed_others() -> None:
    params = [
        Parameter("train.lr", "log_uniform", 1e-4, 1.0),
        Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999),
    ]
    assert list(sample(params, "random", 5, 3)) == list(sample(params, "random", 5, 3))
    assert list(sample(params, "random", 5, 3)) != list(sample(params, "random", 5, 4))


def test_grid_points_are_even_on_each_scale() -> None:
    assert Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999, grid_points=3).grid() == pytest.approx(
        [0.9, 0.99, 0.999]
    )
    assert Parameter("train.lr", "log_uniform", 1e-3, 1.0, grid_points=4).grid() == pytest.approx([1e-3, 1e-2, 1e-1, 1])
    assert Parameter("train.lr", "uniform", 0.0, 1.0, grid_points=3).grid() == pytest.approx([0, 0.5, 1])
    assert Parameter("train.batch_size", "int_log_uniform", 16, 256, grid_points=5).grid() == [16, 32, 64, 128, 256]
    assert Parameter("train.batch_size", "int_uniform", 1, 3, grid_points=10).grid() == [1, 2, 3]


def test_grid_search_is_the_cross_product() -> None:
    params = [
        Parameter("train.lr", "log_uniform", 1e-3, 1.0, grid_points=4),
        Parameter("train.momentum", values=(0.0, 0.9)),
    ]
    configs = list(sample(params, "grid", 100, 0))
    assert len(configs) == grid_size(params) == 8
    assert {(c["train.lr"], c["train.momentum"]) for c in configs} == {
        (lr, m) for lr in params[0].grid() for m in (0.0, 0.9)
    }


def test_tpe_hands_trials_beta_not_its_latent_coordinate() -> None:
    params = [
        Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999),
        Parameter("model.hidden", values=([8], [16, 16])),
    ]
    configs = list(sample(params, "tpe", 200, 0))
    beta = np.array([c["train.momentum"] for c in configs])
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    assert stats.kstest(np.log10(1 - beta), stats.uniform(loc=-3, scale=2).cdf).pvalue > ALPHA
    assert {tuple(c["model.hidden"]) for c in configs} == {(8,), (16, 16)}
    assert list(sample(params, "tpe", 5, 1)) == list(sample(params, "tpe", 5, 1))


@pytest.mark.parametrize(
    "param",
    [
        Parameter("a.b", "log_uniform", 1e-4, 1.0),
        Parameter("a.b", "one_minus_log_uniform", 0.9, 0.999),
        Parameter("a.b", "uniform", -1.0, 1.0),
    ],
)
def test_latent_round_trip(param: Parameter) -> None:
    for x in param.sample(np.random.default_rng(1), size=50):
        assert param.from_latent(param.to_latent(x)) == pytest.approx(x)


def test_int_latent_round_trip() -> None:
    p = Parameter("a.b", "int_log_uniform", 8, 512)
    assert all(p.from_latent(p.to_latent(x)) == x for x in (8, 9, 100, 511, 512))
    q = Parameter("a.b", values=("x", "y", "z"))
    assert [q.from_latent(q.to_latent(v)) for v in "xyz"] == list("xyz")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"distribution": "log_uniform", "low": 0.0, "high": 1.0}, "must be > 0"),
        ({"distribution": "one_minus_log_uniform", "low": 0.9, "high": 1.0}, "must lie in \\(0, 1\\)"),
        ({"distribution": "uniform", "low": 1.0, "high": 1.0}, "must be < max"),
        ({"distribution": "int_uniform", "low": 1.5, "high": 3.0}, "must be an integer"),
        ({"distribution": "normal", "low": 0.0, "high": 1.0}, "unknown distribution"),
        ({"values": ()}, "must not be empty"),
    ],
)
def test_parameter_checks_its_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        Parameter("a.b", **kwargs)


def test_apply_params_sets_dotted_paths_on_a_copy() -> None:
    base = {"train": {"lr": 0.1, "momentum": 0.9}, "model": {"hidden": [4]}}
    out = apply_params(base, {"train.lr": 0.5, "model.hidden": [8, 8], "model.kwargs.width": 3})
    assert out["train"] == {"lr": 0.5, "momentum": 0.9} and out["model"]["hidden"] == [8, 8]
    assert get_path(out, "model.kwargs.width") == 3
    assert base["train"]["lr"] == 0.1


@pytest.mark.parametrize(
    "param",
    [
        Parameter("train.lr", "log_uniform", 1e-4, 1.0),
        Parameter("train.momentum", "one_minus_log_uniform", 0.5, 0.999),
        Parameter("train.dropout", "uniform", 0.0, 0.5, grid_points=3),
        Parameter("train.batch_size", "int_uniform", 8, 256),
        Parameter("model.hidden", values=([16], [32, 32])),
    ],
)
def test_a_parameter_round_trips_through_its_sweep_file_form(param: Parameter) -> None:
    """run.json records each round's ranges with ``to_dict``; resume and the report read them
    back with ``from_dict``: the same parameter, in the sweep file's own keys."""
    d = param.to_dict()
    assert Parameter.from_dict(param.path, d) == param
    assert set(d) <= {"distribution", "min", "max", "grid_points", "values"}
    assert ("values" in d) == (param.values is not None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"distribution": "one_minus_log_uniform", "low": 1e-20, "high": 1e-17},  # 1 - β rounds to 1 at both ends
        {"distribution": "one_minus_log_uniform", "low": 1e-18, "high": 1e-16},
    ],
)
def test_a_range_whose_ends_are_one_point_on_its_scale_is_refused(kwargs: dict) -> None:  # type: ignore[type-arg]
    """Validated, run in full, then refused at export: every β drawn was 0.0, below min."""
    with pytest.raises(ValueError, match=r"are one point on .*'s scale: widen the range"):
        Parameter("a.b", **kwargs)


def test_every_value_drawn_lies_in_its_range_to_the_ulp() -> None:
    params = [
        Parameter("b", "one_minus_log_uniform", 0.3001818887321787, 0.9),
        Parameter("u", "uniform", 0.1, 2.453526960979143),
        Parameter("l", "log_uniform", 1e-7, 3e-3),
    ]
    rng = np.random.default_rng(0)
    for p in params:
        lo, hi = p.latent_bounds()
        for z in [lo, hi, *rng.uniform(lo, hi, 2000)]:
            assert p.low <= p.from_latent(z) <= p.high


def test_a_refined_range_holds_the_top_values_it_was_built_from_to_the_ulp() -> None:
    """``centre ± width/2`` and the scale's round trip put a top value an ulp outside."""
    rng = np.random.default_rng(1)
    for dist, low, high in (("log_uniform", 1e-4, 1.0), ("one_minus_log_uniform", 0.3, 0.999), ("uniform", -3.0, 5.0)):
        p = Parameter("x", dist, low, high)
        for _ in range(2000):
            top = list(p.sample(rng, size=int(rng.integers(1, 4))))
            if rng.random() < 0.2:
                top.append(low)  # at the file's bound
            r = p.restrict(top, margin=float(rng.choice([0.0, 0.1])))
            assert all(r.low <= v <= r.high for v in top), (dist, top, r)


def test_a_categorical_tells_1_from_true() -> None:
    p = Parameter("c", values=(1, True, "x"))
    assert p.to_latent(True) == 1.5 and p.to_latent(1) == 0.5
    assert p.restrict([True], 0.1).values == (True,)
    assert Parameter("w", values=(32, 64)).to_latent(64.0) == 1.5  # read back from JSON as a float
