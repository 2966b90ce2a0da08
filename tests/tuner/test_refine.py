"""Refine rounds: ranges shrink toward the best on each parameter's own scale."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_sweep
from tuner.ray.search import sample
from tuner.runner import run_sweep
from tuner.space import MIN_FRACTION, Parameter
from tuner.space import restrict_all as next_parameters
from tuner.spec import from_dict

LR = Parameter("train.lr", "log_uniform", 1e-5, 10.0)
BETA = Parameter("train.momentum", "one_minus_log_uniform", 0.5, 0.9999)
WIDTH = Parameter("model.hidden", values=([8], [16], [32], [64]))
OPTIMUM = {"train.lr": 1e-2, "train.momentum": 0.99}  # log10 lr = -2, log10(1 - β) = -2


def objective(c: dict) -> float:  # type: ignore[type-arg]
    """A known optimum on the log scales; the width 32 is best."""
    return -(
        (math.log10(c["train.lr"]) + 2) ** 2
        + (math.log10(1 - c["train.momentum"]) + 2) ** 2
        + (0 if c["model.hidden"] == [32] else 0.5)
    )


def test_rounds_zoom_in_on_a_known_optimum_on_the_right_scales() -> None:
    """Sampling (through Ray Tune's random search), ranking and refining, as the runner does it."""
    original = [LR, BETA, WIDTH]
    params, seen = list(original), []
    widths = []
    for round_index in range(4):
        configs = list(sample(params, "random", 24, seed=round_index))
        for c in configs:  # every configuration lies inside this round's ranges
            assert params[0].low <= c["train.lr"] <= params[0].high
            assert params[1].low <= c["train.momentum"] <= params[1].high
        seen += configs
        top = sorted(seen, key=objective, reverse=True)[:5]
        params = next_parameters(params, original, top, margin=0.1)
        lr, beta, width = params
        widths.append((math.log10(lr.high) - math.log10(lr.low), math.log10(1 - beta.low) - math.log10(1 - beta.high)))
        # the optimum stays inside, on the log scales
        assert lr.low <= OPTIMUM["train.lr"] <= lr.high
        assert beta.low <= OPTIMUM["train.momentum"] <= beta.high
    assert widths[-1][0] < 0.4 * 6 and widths[-1][1] < 0.4 * math.log10(0.5 / 1e-4)  # shrank to < 40%
    for before, after in zip(widths, widths[1:]):  # each round's ranges no wider than the last's
        assert after[0] <= before[0] + 1e-9 and after[1] <= before[1] + 1e-9, widths
    assert [32] in params[2].values  # type: ignore[operator]
    # the centre moved to the optimum on the log scale, not the linear one
    centre = (math.log10(params[0].low) + math.log10(params[0].high)) / 2
    assert abs(centre + 2) < 0.75


def test_span_margin_and_clipping() -> None:
    p = refine_parameter(LR, LR, [1e-3, 1e-2], margin=0.5)  # span 1 decade, +0.5 decade each side
    assert (math.log10(p.low), math.log10(p.high)) == pytest.approx((-3.5, -1.5))
    p = refine_parameter(LR, LR, [5.0, 10.0], margin=1.0)  # clipped at the original max
    assert p.high == 10.0 and p.low < 5.0
    b = refine_parameter(BETA, BETA, [0.9, 0.99], margin=0.0)  # on log10(1 - β): [-2, -1]
    assert (b.low, b.high) == pytest.approx((0.9, 0.99))


def expected_span(values: list[float], low: float, high: float, margin: float) -> tuple[float, float]:
    """What refine makes of ``values`` in [low, high] on whatever scale they are given in
    (written out here, independently of :meth:`Parameter.restrict`)."""
    lo, hi = min(values), max(values)
    width = max(hi - lo, MIN_FRACTION * (high - low))
    centre = (lo + hi) / 2
    return max(centre - width / 2 * (1 + 2 * margin), low), min(centre + width / 2 * (1 + 2 * margin), high)


@pytest.mark.parametrize(
    "top, margin",
    [
        ([0.9, 0.99], 0.5),  # a decade of 1 - β, widened by half a decade on each side
        ([0.95, 0.999], 0.25),
        ([0.99, 0.99], 0.0),  # one point: the minimum span, centred on it
    ],
)
def test_beta_is_refined_on_log10_one_minus_beta_not_on_beta(top: list[float], margin: float) -> None:
    """The margin tells the scales apart: on log10(1 - β) it widens [0.9, 0.99] to
    [1 - 10^-0.5, 1 - 10^-2.5] = [0.684, 0.9968]; on β itself it would give [0.855, 0.9999]."""
    b = refine_parameter(BETA, BETA, top, margin=margin)
    z_lo, z_hi = expected_span([math.log10(1 - v) for v in top], math.log10(1e-4), math.log10(0.5), margin)
    assert (b.low, b.high) == pytest.approx((1 - 10**z_hi, 1 - 10**z_lo), rel=1e-12)
    linear = expected_span(top, BETA.low, BETA.high, margin)  # what refining β on a linear scale gives
    assert abs(b.low - linear[0]) + abs(b.high - linear[1]) > 0.01, (b, linear)
    assert b.low < min(top) <= max(top) < b.high


def test_log_parameters_are_refined_on_log10() -> None:
    p = refine_parameter(LR, LR, [1e-4, 1e-3], margin=0.5)
    assert (p.low, p.high) == pytest.approx((10**-4.5, 10**-2.5), rel=1e-12)  # linear: [0, 1.45e-3]
    u = Parameter("train.dropout", "uniform", 0.0, 1.0)
    q = refine_parameter(u, u, [0.2, 0.4], margin=0.5)
    assert (q.low, q.high) == pytest.approx((0.1, 0.5))


def test_top_k_at_one_point_still_gets_a_non_empty_range() -> None:
    p = refine_parameter(LR, LR, [1e-2, 1e-2, 1e-2], margin=0.0)
    span = math.log10(p.high) - math.log10(p.low)
    assert p.low < 1e-2 < p.high and span == pytest.approx(MIN_FRACTION * 6)
    i = Parameter("train.batch_size", "int_uniform", 8, 256)
    q = refine_parameter(i, i, [64, 64], margin=0.0)
    assert q.low < q.high and isinstance(q.low, int) and q.low <= 64 <= q.high
    edge = Parameter("train.batch_size", "int_uniform", 2, 3)
    r = refine_parameter(edge, edge, [3, 3], margin=0.0)
    assert (r.low, r.high) == (2, 3)


def test_integers_round_outward_on_their_scale() -> None:
    p = Parameter("train.batch_size", "int_log_uniform", 8, 1024)
    q = refine_parameter(p, p, [30, 70], margin=0.0)
    assert q.low <= 30 and q.high >= 70 and isinstance(q.high, int)
    assert q.high - q.low < 200


def test_categoricals_keep_the_values_in_the_top_k() -> None:
    assert refine_parameter(WIDTH, WIDTH, [[16], [64], [16]], 0.1).values == ([16], [64])
    # none of the top k's values among the file's (a hand-edited run): the values stay as they were
    assert refine_parameter(WIDTH, WIDTH, [[999]], 0.1).values == WIDTH.values
    assert refine_parameter(WIDTH, WIDTH, [], 0.1) is WIDTH


def test_a_later_round_refines_within_the_files_range_not_the_last_rounds() -> None:
    """The minimum span and the clipping come from the sweep file's range (``within``), not
    from the narrower range of the round before."""
    narrow = Parameter("train.lr", "log_uniform", 1e-3, 1e-2)
    p = refine_parameter(narrow, LR, [1e-2, 1e-2], margin=0.0)
    assert math.log10(p.high) - math.log10(p.low) == pytest.approx(MIN_FRACTION * 6)  # of 1e-5..10: 6 decades
    q = refine_parameter(narrow, LR, [1e-3, 1e-1], margin=0.5)  # beyond the narrow range, inside the file's
    assert (q.low, q.high) == pytest.approx((1e-4, 1.0))
    assert refine_parameter(narrow, LR, [5.0, 10.0], margin=1.0).high == 10.0  # clipped at the file's max
    # the runner's form: each parameter restricted within the file's parameter of its path
    assert next_parameters([narrow, WIDTH], [WIDTH, LR], [{"train.lr": 1e-2}, {"train.lr": 1e-2}], 0.0) == [p, WIDTH]
    assert next_parameters([narrow], [LR], [{"model.hidden": [8]}], 0.0) == [narrow]  # not in the top k: kept


@pytest.mark.parametrize(
    "param, top, expected",
    [
        (Parameter("train.batch_size", "int_uniform", 8, 256), [1000], (255, 256)),
        (Parameter("train.batch_size", "int_uniform", 8, 256), [-100], (8, 9)),
        (LR, [100.0], (10.0 - 9.99999e-6, 10.0)),
        (LR, [1e-7], (1e-5, 1e-5 + 9.99999e-6)),
    ],
)
def test_top_values_beyond_the_files_range_leave_a_slice_at_the_nearest_bound(
    param: Parameter, top: list[float], expected: tuple[float, float]
) -> None:
    """A run edited by hand (or a sweep file narrowed since) can rank values outside the
    file's range first: the range collapses onto the nearest bound, and is never empty (one
    integer and its neighbour; a millionth of the range)."""
    q = refine_parameter(param, param, top, margin=0.0)
    assert (q.low, q.high) == pytest.approx(expected, rel=1e-9)
    assert type(q.low) is type(param.low) and q.low < q.high


def test_integers_that_land_on_an_integer_keep_it() -> None:
    i = Parameter("train.batch_size", "int_uniform", 8, 256)
    q = refine_parameter(i, i, [20, 60], margin=0.0)  # a span of 40 > 10% of 248: no widening
    assert (q.low, q.high) == (20, 60)


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("method", ["random", "tpe"])
def test_refine_rounds_end_to_end(tmp_path: Path, method: str) -> None:
    raw = tiny_sweep(
        **{
            # a loss, not an accuracy: no ties (60 validation samples make accuracies tie often),
            # so round 0's top 2 are two known trials; and refine ranks in the metric's direction
            "metric": "val_loss",
            "mode": "min",
            "search.method": method,
            "search.num_samples": 6,
            "train.epochs": 2,
            "search.refine": {"rounds": 1, "top_k": 2, "num_samples": 3, "margin": 0.25},
        }
    )
    raw["search"]["parameters"]["model.hidden"] = {"values": [[4], [16], [32]]}
    lines: list[str] = []
    summary = run_sweep(from_dict(raw, source="tiny.yaml"), storage=tmp_path, write=lines.append)
    meta = json.loads((summary.run_dir / "run.json").read_text())
    r0, r1 = meta["rounds"]
    assert (r0["seed"], r1["seed"]) == (0, 1) and (r0["num_samples"], r1["num_samples"]) == (6, 3)
    assert r0["status"] == r1["status"] == "done" and r0["best"]["trial"] and r1["best"]["trial"]
    trials = summary.run.trials
    assert sorted(t.round for t in trials) == [0] * 6 + [1] * 3
    # round 1's ranges are the span of round 0's top 2 on each parameter's scale, a quarter of
    # it added on each side (a margin tells the scales apart), clipped to the file's ranges;
    # and its trials sample inside them
    ranked = summary.run.ranked(rounds=[0])
    assert ranked[1].score("val_loss") < ranked[2].score("val_loss")  # the top 2 are not a tie with the 3rd
    top2 = [t.params for t in ranked[:2]]
    lr, beta = r1["parameters"]["train.lr"], r1["parameters"]["train.momentum"]
    z = expected_span([math.log10(p["train.lr"]) for p in top2], math.log10(1e-3), math.log10(0.5), 0.25)
    assert (lr["min"], lr["max"]) == pytest.approx((10 ** z[0], 10 ** z[1]), rel=1e-9)
    z = expected_span([math.log10(1 - p["train.momentum"]) for p in top2], math.log10(0.01), math.log10(0.5), 0.25)
    assert (beta["min"], beta["max"]) == pytest.approx((1 - 10 ** z[1], 1 - 10 ** z[0]), rel=1e-9)
    for t in trials:
        if t.round == 1:
            assert lr["min"] <= t.params["train.lr"] <= lr["max"]
            assert beta["min"] <= t.params["train.momentum"] <= beta["max"]
            assert t.params["model.hidden"] in r1["parameters"]["model.hidden"]["values"]
    assert set(map(tuple, r1["parameters"]["model.hidden"]["values"])) == {tuple(p["model.hidden"]) for p in top2}
    # progress shows each round's ranges and best; the export's top draws from all rounds
    assert any(line.startswith("round 2/2: 3 trials, seed 1, ranges:") for line in lines)
    assert any(line.startswith("round 2/2 best val_loss") for line in lines)
    export = yaml.safe_load((summary.run_dir / "best.yaml").read_text())
    assert len(export["top"]) == 5 and {e["round"] for e in export["top"]} <= {0, 1}
    assert export["top"][0]["trial"] == summary.run.ranked()[0].trial_id
    assert np.isfinite(export["score"])


def refine_parameter(current: Parameter, original: Parameter, values: list, margin: float) -> Parameter:  # type: ignore[type-arg]
    return current.restrict(values, margin, original)
