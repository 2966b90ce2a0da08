"""Precise BN statistics and ASHA's rung decisions: do early rung scores predict the final one
better when BN's statistics are re-estimated before each validation, and which ASHA defaults
then spend ≥ 5× fewer epochs than full-budget random search for the same test accuracy?

The quickstart space (BN-MLP on MNIST-1D, ``sweeps/quickstart.yaml``), in three steps:

1. **Curves.** For each sweep seed, the first N configurations random search draws (the very
   ones ``tuner run`` with that ``search.seed`` hands its trials, in that order) train their
   full budget with the trial's seed, as plain Ray tasks (1 CPU each). After every epoch the
   one network is validated several ways: with BN's running averages (``train.precise_bn:
   0``) and with precise statistics over the first n fixed training batches for each n of
   ``precise`` (the running averages are put back after each). Precise BN changes no weight,
   so each way's scores are exactly those of a trial with ``train.precise_bn: n`` (step 3
   checks it against tuner's own trials); one set of trainings gives every way and every
   rung. Reported: Spearman's rank correlation between each epoch's val_acc and the final
   val_acc (and the final test_acc), mean over sweep seeds.
2. **Replays.** Ray's asynchronous successive-halving rule (``_Bracket.on_result`` of Ray 2.60,
   restated in :func:`replay`) replayed over those curves, 2 workers, epoch times jittered, on
   sweeps of N configurations drawn from every seed's (many sweeps, so that the few
   configurations near the top weigh less): for each (grace, η, brackets) and way, the epochs
   spent and the test accuracy of the best configuration ASHA keeps, against full-budget search
   over the same configurations (its best by final val_acc). Also: how often a sweep's 5 best
   configurations are in the top quarter at each epoch (whether a rung there keeps them).
   Picks the defaults.
3. **Real sweeps.** ``run_sweep`` (as ``tuner run``) with the schema's scheduler defaults,
   with and without precise BN, for each sweep seed: epochs, and the test accuracy of the
   best trial's configuration (its full-budget curve from step 1). Then the bests of ASHA and
   of full-budget search re-trained with fresh seeds: test accuracy free of one seed's luck.

Test protocol: a configuration's test accuracy is that of its full-budget training (train
split, the trial's seed or a fresh one), evaluated once on the test split in the same way.

Full size: 3 sweep seeds × 48 configurations × 20 epochs; precise BN over 2, 8 and 32
batches; 100 replayed sweeps; 5 retest seeds. Quick: 1 seed × 4 configurations × 3 epochs, 2
batches, 2 replays, one real sweep (precise BN), no retest.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import Context

SWEEP = "sweeps/quickstart.yaml"
RETEST_SEEDS = (101, 102, 103, 104, 105)
# (grace, η, brackets) replayed in step 2
SETTINGS = ((1, 3, 1), (1, 4, 1), (1, 5, 1), (1, 4, 2), (2, 3, 1), (2, 4, 1), (2, 5, 1))


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"seeds": [0], "num_samples": 4, "epochs": 3, "precise": [2], "replays": 2, "retest_seeds": 0}
    return {
        "seeds": [0, 1, 2],
        "num_samples": 48,
        "epochs": 20,
        "precise": [2, 8, 32],
        "replays": 100,
        "retest_seeds": 5,
    }


# -- step 1: curves ----------------------------------------------------------------------------


def draws(seed: int, n: int, epochs: int, **overrides: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first ``n`` configurations of the quickstart space for ``search.seed = seed``: their
    params and their whole configs (``data``, ``model``, ``train``)."""
    from tuner.ray.search import sample
    from tuner.space import apply_params

    raw = common.sweep_dict(
        SWEEP, **{"search.seed": seed, "search.num_samples": n, "train.epochs": epochs}, **overrides
    )
    sweep = common.load(raw)
    params = list(sample(sweep.search.parameters, sweep.search.method, n, seed, sweep.metric, sweep.mode))
    base = sweep.base_config()
    return params, [{"data": sweep.data, **apply_params(base, p)} for p in params]


def curves(
    *, config: dict[str, Any], seed: int, precise: Sequence[int], data: Any, device: Any, cpus: int
) -> dict[str, Any]:
    """One full-budget training validated every epoch in every way (0: BN's running averages;
    n: precise statistics over the first n fixed batches, as ``train.precise_bn: n``). Returns
    ``{"val_acc": {way: [per epoch]}, "test_acc": {way: x}, "train_s", "bn_s", "eval_s"}``;
    a diverged training's lists stop before the epoch that diverged."""
    from tuner.models.train import Trainer, bn_layers, recompute_bn_stats

    ways = [0, *precise]
    trainer = Trainer(config["model"], {**config["train"], "precise_bn": max(ways)}, data, device=device, seed=seed)
    bns = bn_layers(trainer.model)
    out: dict[str, Any] = {"val_acc": {n: [] for n in ways}, "test_acc": {}, "train_s": [], "bn_s": {}, "eval_s": []}
    bn_s = {n: 0.0 for n in ways}
    while trainer.epoch < trainer.epochs_total:
        start = time.perf_counter()
        loss = trainer.train_epoch()
        out["train_s"].append(time.perf_counter() - start)
        if not math.isfinite(loss):
            out["diverged_at"] = trainer.epoch
            break
        running = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
        for n in ways:
            start = time.perf_counter()
            if n and bns:
                recompute_bn_stats(trainer.model, (trainer.x_train[i] for i in trainer.bn_batches[:n]))
            bn_s[n] += time.perf_counter() - start
            start = time.perf_counter()
            out["val_acc"][n].append(trainer.evaluate()["val_acc"])
            out["eval_s"].append(time.perf_counter() - start)
            if trainer.epoch == trainer.epochs_total and trainer.x_test is not None:
                out["test_acc"][n] = trainer.evaluate(trainer.x_test, trainer.y_test, prefix="test_")["test_acc"]
            for bn, (mean, var) in zip(bns, running):  # the running averages go on as if never replaced
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
    out["bn_s"] = {n: s / max(len(out["train_s"]), 1) for n, s in bn_s.items()}
    return out


def train_curves(configs: Sequence[dict[str, Any]], seeds: Sequence[int], precise: Sequence[int]) -> list[dict]:
    """:func:`curves` of every (config, seed), in parallel as Ray tasks, 1 CPU each."""
    from tuner.models.data import load as load_data
    from tuner.ray import cluster
    from tuner.ray.worker import run_tasks

    cluster.connect()
    data = load_data(configs[0]["data"])  # one data set: the quickstart's, test split included
    calls = [
        {"config": {k: c[k] for k in ("model", "train")}, "seed": s, "precise": list(precise)}
        for c, s in zip(configs, seeds)
    ]
    return run_tasks(curves, calls, shared={"data": data}, cpu=1, gpu=0)


def cached_curves(ctx: Context, size: dict[str, Any], configs: list[dict]) -> tuple[list[dict], float, str | None]:
    """Step 1's trainings, or those of an earlier full run with the same sizes and configurations
    (``OUT/bn_rungs-curves.json``: the trainings are deterministic on a CPU, and step 3 checks
    every score of its fresh trials against them). Returns the curves, the seconds they took
    and, when reused, when they were made."""
    import datetime as dt
    import json

    from tuner.files import write_json

    path = ctx.out / "bn_rungs-curves.json"
    stamp = {
        "sizes": {k: size[k] for k in ("seeds", "num_samples", "epochs", "precise")},
        "configs": [key(c) for c in configs],
    }
    if not ctx.quick and path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("stamp") == stamp:
            for c in saved["curves"]:  # JSON keys are strings; the ways are ints
                for k in ("val_acc", "test_acc", "bn_s"):
                    c[k] = {int(w): v for w, v in c[k].items()}
            return saved["curves"], float(saved["seconds"]), str(saved["created"])
    with common.Timer() as timer:
        done = train_curves(configs, [int(c["train"]["seed"]) for c in configs], size["precise"])
    if not ctx.quick:
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        write_json(path, {"stamp": stamp, "created": created, "seconds": timer.s, "curves": done})
    return done, timer.s, None


def acc(c: dict[str, Any], way: int, epoch: int) -> float:
    """val_acc after ``epoch`` (1-based); 0 once diverged (the worst a trial can report)."""
    values = c["val_acc"][way]
    return float(values[epoch - 1]) if epoch <= len(values) else 0.0


def test_of(c: dict[str, Any], way: int) -> float:
    return float(c["test_acc"].get(way, 0.0))


def rank_table(curves_by_seed: dict[int, list[dict]], ways: Sequence[int], epochs: int) -> dict[str, Any]:
    """Spearman's ρ between each epoch's val_acc and the final val_acc (and test_acc), per
    way: the mean over sweep seeds and each seed's."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {}
    for way in ways:
        rows = {}
        for e in range(1, epochs):
            per_seed_val, per_seed_test = [], []
            for cs in curves_by_seed.values():
                early = [acc(c, way, e) for c in cs]
                per_seed_val.append(float(spearmanr(early, [acc(c, way, epochs) for c in cs]).statistic))
                per_seed_test.append(float(spearmanr(early, [test_of(c, way) for c in cs]).statistic))
            rows[e] = {
                "rho_final_val": float(np.nanmean(per_seed_val)),
                "rho_final_test": float(np.nanmean(per_seed_test)),
                "per_seed_val": per_seed_val,
            }
        out[str(way)] = rows
    return out


# -- step 2: replays ---------------------------------------------------------------------------


def rungs(grace: int, eta: float, brackets: int, max_t: int) -> list[list[float]]:
    """Each bracket's rung milestones, highest first, as Ray's ``_Bracket`` builds them."""
    out = []
    for s in range(brackets):
        n = int(np.log(max_t / grace) / np.log(eta) - s + 1)
        out.append([grace * eta ** (k + s) for k in reversed(range(n))])
    return out


def replay(
    cs: Sequence[dict],
    way: int,
    grace: int,
    eta: float,
    brackets: int,
    max_t: int,
    rng: np.random.Generator,
    workers: int = 2,
    jitter: float = 0.2,
) -> dict[str, Any]:
    """Asynchronous successive halving over recorded curves: trials start in order on
    ``workers`` workers, each epoch takes its measured time × a log-normal jitter, and every
    result meets Ray 2.60's rule (a trial's first result at or past a rung milestone it has no
    record in is stopped when below the rung's (1 − 1/η) percentile, then recorded; a trial
    joins bracket s with probability ∝ e^(rungs_s)). Returns epochs spent and the best kept."""
    milestones = rungs(grace, eta, brackets, max_t)
    recorded: list[list[dict[int, float]]] = [[{} for _ in b] for b in milestones]
    sizes_ = np.array([len(b) for b in milestones])
    probs = np.exp(sizes_ - sizes_.max())
    probs = probs / probs.sum()
    bracket = [int(rng.choice(len(milestones), p=probs)) for _ in cs]
    cost = [float(np.mean(c["train_s"])) + float(c["bn_s"].get(way, 0.0)) for c in cs]
    last = [0.0] * len(cs)
    epochs = [0] * len(cs)
    events: list[tuple[float, int]] = []
    started = 0

    def schedule(i: int, now: float) -> None:
        heapq.heappush(events, (now + cost[i] * float(rng.lognormal(0.0, jitter)), i))

    while started < min(workers, len(cs)):
        schedule(started, 0.0)
        started += 1
    while events:
        now, i = heapq.heappop(events)
        epochs[i] += 1
        t = epochs[i]
        value = acc(cs[i], way, t)
        diverged = t > len(cs[i]["val_acc"][way])
        last[i] = value
        stop = diverged or t >= max_t
        if not stop:
            b = bracket[i]
            for milestone, rec in zip(milestones[b], recorded[b]):
                if t < milestone or i in rec:
                    continue
                cutoff = np.nanpercentile(list(rec.values()), (1 - 1 / eta) * 100) if rec else None
                stop = cutoff is not None and value < cutoff
                rec[i] = value
                break
        if stop:
            if started < len(cs):
                schedule(started, now)
                started += 1
        else:
            schedule(i, now)
    best = max(range(len(cs)), key=lambda j: (last[j], epochs[j]))
    return {"epochs": sum(epochs), "best": best, "test_acc": test_of(cs[best], way)}


def full_budget_best(cs: Sequence[dict], way: int, max_t: int) -> int:
    """Full-budget random search's pick: the best final val_acc (first of ties)."""
    return max(range(len(cs)), key=lambda j: (acc(cs[j], way, max_t), -j))


def replays(pool: Sequence[dict], ways: Sequence[int], epochs: int, size: int, n: int) -> list[dict[str, Any]]:
    """Every setting of ``SETTINGS`` × way over ``n`` synthetic sweeps: ``size`` configurations
    drawn without replacement from the ``pool`` of every sweep seed's curves, in random order
    (the same draws for every setting and way). Per setting and way: epochs full / ASHA, the
    test_acc of ASHA's best and of full-budget search's best, how often they are the same."""
    rows = []
    draws_ = [np.random.default_rng(k).permutation(len(pool))[:size] for k in range(n)]
    for grace, eta, brackets in SETTINGS:
        for way in ways:
            ratios, asha_test, full_test, same = [], [], [], []
            for k, idx in enumerate(draws_):
                cs = [pool[i] for i in idx]
                full = full_budget_best(cs, way, epochs)
                r = replay(cs, way, grace, eta, brackets, epochs, np.random.default_rng(10_000 + k))
                ratios.append(len(cs) * epochs / r["epochs"])
                asha_test.append(r["test_acc"])
                full_test.append(test_of(cs[full], way))
                same.append(r["best"] == full)
            regret = np.array(full_test) - np.array(asha_test)
            rows.append(
                {
                    "grace_period": grace,
                    "reduction_factor": eta,
                    "brackets": brackets,
                    "precise_bn": way,
                    "milestones": sorted({math.ceil(m) for b in rungs(grace, eta, brackets, epochs) for m in b}),
                    "epochs_ratio": float(np.mean(ratios)),
                    "test_asha": float(np.mean(asha_test)),
                    "test_full": float(np.mean(full_test)),
                    "test_regret": float(regret.mean()),
                    "test_regret_std": float(regret.std()),
                    "same_best": float(np.mean(same)),
                }
            )
    return rows


def survival(curves_by_seed: dict[int, list[dict]], ways: Sequence[int], epochs: int, eta: float, top: int = 5) -> dict:
    """How often each sweep's ``top`` configurations by final test_acc (the mean over the ways:
    one yardstick for all) are among the best 1/η at an early epoch: whether a rung there
    would keep them. Per way and epoch, the mean over sweep seeds."""
    out: dict[str, dict[int, float]] = {}
    for way in ways:
        out[str(way)] = {}
        for e in range(1, epochs):
            kept = []
            for cs in curves_by_seed.values():
                quality = [float(np.mean([test_of(c, w) for w in ways])) for c in cs]
                best = set(np.argsort(quality)[::-1][:top].tolist())
                cut = set(np.argsort([-acc(c, way, e) for c in cs], kind="stable")[: math.ceil(len(cs) / eta)].tolist())
                kept.append(len(best & cut) / top)
            out[str(way)][e] = float(np.mean(kept))
    return out


# -- step 3: real sweeps -----------------------------------------------------------------------


def schema_defaults() -> dict[str, Any]:
    """The sweep file's defaults this benchmark is about (``tuner/spec/schema.py``)."""
    from tuner.spec.schema import SCHEDULER_FIELDS, TRAIN_FIELDS

    out = {k: SCHEDULER_FIELDS[k].default for k in ("grace_period", "reduction_factor", "brackets")}
    return {**out, "precise_bn": TRAIN_FIELDS["precise_bn"].default}


def key(params: dict[str, Any]) -> str:
    import json

    return json.dumps(params, sort_keys=True, default=str)


def real_sweep(
    ctx: Context, seed: int, way: int, size: dict[str, Any], sched: dict[str, Any], params: list[dict], cs: list[dict]
) -> dict[str, Any]:
    """One ``run_sweep`` of the seed's configurations under ASHA with ``sched``, validating
    with precise BN over ``way`` batches (0: running averages); its trials' every score is
    checked against the step-1 curves (the same training, so the same numbers)."""
    epochs, n = size["epochs"], size["num_samples"]
    overrides = {
        "name": f"asha-{seed}-pbn{way}",
        "search.seed": seed,
        "search.num_samples": n,
        "train.epochs": epochs,
        "train.precise_bn": way,
        **{f"scheduler.{k}": v for k, v in sched.items()},
    }
    summary = common.run(ctx, common.sweep_dict(SWEEP, **overrides), overrides["name"])
    index = {key(p): i for i, p in enumerate(params)}
    trials = summary.run.trials
    if sorted(key(t.params) for t in trials) != sorted(index):
        got = sorted(key(t.params) for t in trials)
        raise RuntimeError(
            f"seed {seed}: the sweep sampled other configurations than the curves': {got} vs {sorted(index)}"
        )
    gap = max(
        abs(float(h["val_acc"]) - acc(cs[index[key(t.params)]], way, int(h["epoch"])))
        for t in trials
        for h in t.history
        if h.get("val_acc") is not None and math.isfinite(float(h["val_acc"]))
    )
    best = summary.run.ranked()[0]
    i, full = index[key(best.params)], full_budget_best(cs, way, epochs)
    spent = common.epochs_of(summary)
    return {
        "seed": seed,
        "precise_bn": way,
        "epochs": spent,
        "full_epochs": n * epochs,
        "epochs_ratio": n * epochs / spent,
        "wall_s": summary.wall_s,
        "compute_s": common.compute_s(summary),
        "best": i,
        "best_params": best.params,
        "best_val_acc": best.score("val_acc"),
        "best_epochs": best.epochs,
        "test_acc": test_of(cs[i], way),
        "full_best": full,
        "full_test_acc": test_of(cs[full], way),
        "same_best": i == full,
        "max_gap_to_curves": gap,
    }


def retests(
    configs: dict[int, list[dict]], picks: list[tuple[int, int]], seeds: Sequence[int], ways: Sequence[int]
) -> dict:
    """Re-train each picked (sweep seed, configuration) with fresh ``seeds``; test_acc per way."""
    unique = sorted(set(picks))
    calls = [(s, i, seed) for s, i in unique for seed in seeds]
    done = train_curves([configs[s][i] for s, i, _ in calls], [seed for _, _, seed in calls], [w for w in ways if w])
    out: dict[tuple[int, int], dict[int, list[float]]] = {p: {w: [] for w in ways} for p in unique}
    for (s, i, _), c in zip(calls, done):
        for w in ways:
            out[(s, i)][w].append(test_of(c, w))
    return out


def retest_picks(
    ctx: Context, configs: dict[int, list[dict]], real: list[dict], seeds: Sequence[int], ways: Sequence[int]
) -> list[dict[str, Any]]:
    """ASHA's best and full-budget search's best of every real sweep, re-trained with fresh
    ``seeds`` (none: skipped): their test_acc in the sweep's way, and ASHA's minus full's."""
    if not seeds:
        return []
    picks = [(r["seed"], r["best"]) for r in real] + [(r["seed"], r["full_best"]) for r in real]
    with common.Timer() as timer:
        again = retests(configs, picks, seeds, ways)
    rows = []
    for r in real:
        w = r["precise_bn"]
        a, f = again[(r["seed"], r["best"])][w], again[(r["seed"], r["full_best"])][w]
        seed_std = float(np.mean([np.std(a, ddof=1), np.std(f, ddof=1)])) if len(seeds) > 1 else 0.0
        rows.append(
            {
                "seed": r["seed"],
                "precise_bn": w,
                "asha": a,
                "full": f,
                "diff": float(np.mean(a) - np.mean(f)),
                "seed_std": seed_std,
            }
        )
    ctx.say(f"\nre-tested with {len(seeds)} fresh seeds ({timer.s:.0f}s): test_acc of the best configuration")
    lines = [
        [x["seed"], x["precise_bn"], common.pm(x["full"]), common.pm(x["asha"]), f"{x['diff'] * 100:+.2f}"]
        for x in rows
    ]
    for line in common.table(lines, ["seed", "precise_bn", "full budget", "ASHA", "ASHA − full (points)"]):
        ctx.say(line)
    return rows


# -- the benchmark -----------------------------------------------------------------------------

ON = 8  # the precise-BN batches step 3 compares against 0 when the schema's default is 0


def run(ctx: Context) -> dict[str, Any]:
    size = sizes(ctx.quick)
    epochs, ways = size["epochs"], [0, *size["precise"]]
    common.ensure_ray()
    params: dict[int, list[dict]] = {}
    configs: dict[int, list[dict]] = {}
    for seed in size["seeds"]:
        params[seed], configs[seed] = draws(seed, size["num_samples"], epochs)
    flat = [c for seed in size["seeds"] for c in configs[seed]]
    done, step1_s, reused = cached_curves(ctx, size, flat)
    cs = {seed: done[k * size["num_samples"] : (k + 1) * size["num_samples"]] for k, seed in enumerate(size["seeds"])}
    train_s = float(np.mean([s for c in done for s in c["train_s"]]))
    eval_s = float(np.mean([s for c in done for s in c["eval_s"]]))
    cost = {w: float(np.mean([c["bn_s"][w] for c in done])) for w in ways}
    overhead = {w: (cost[w] + (eval_s if w else 0.0)) / (train_s + eval_s) for w in ways}
    ctx.say(
        f"step 1: {len(flat)} configurations × {epochs} epochs in {step1_s:.0f}s{' (reused: ' + reused + ')' if reused else ''}; an epoch trains in "
        f"{train_s * 1e3:.0f} ms, validates in {eval_s * 1e3:.0f} ms; precise BN adds "
        + ", ".join(f"{w} batches {overhead[w]:.0%}" for w in ways if w)
    )

    ranks = rank_table(cs, ways, epochs)
    shown = [e for e in (1, 2, 3, 4, 5, 6, 8, 9, 12, 16, 18) if e < epochs] or list(range(1, epochs))
    ctx.say("\nSpearman ρ of val_acc at epoch e with the final val_acc (mean over sweep seeds):")
    lines = [
        [f"precise_bn {w}" if w else "running averages"] + [f"{ranks[str(w)][e]['rho_final_val']:.3f}" for e in shown]
        for w in ways
    ]
    for line in common.table(lines, ["validated with", *[f"e{e}" for e in shown]]):
        ctx.say(line)
    ctx.say("… and with the final test_acc:")
    lines = [
        [f"precise_bn {w}" if w else "running averages"] + [f"{ranks[str(w)][e]['rho_final_test']:.3f}" for e in shown]
        for w in ways
    ]
    for line in common.table(lines, ["validated with", *[f"e{e}" for e in shown]]):
        ctx.say(line)

    kept = survival(cs, ways, epochs, eta=4)
    ctx.say("\nhow often a sweep's 5 best configurations (by final test_acc) are in the top quarter at epoch e:")
    lines = [[f"precise_bn {w}" if w else "running averages"] + [f"{kept[str(w)][e]:.2f}" for e in shown] for w in ways]
    for line in common.table(lines, ["validated with", *[f"e{e}" for e in shown]]):
        ctx.say(line)

    pool = [c for seed in size["seeds"] for c in cs[seed]]
    reps = replays(pool, ways, epochs, size["num_samples"], size["replays"])
    ctx.say(
        f"\nstep 2: ASHA replayed over {size['replays']} sweeps of {size['num_samples']} configurations drawn from the "
        f"{len(pool)}; test_acc of the best each keeps (regret: full budget's − ASHA's, mean ± std over sweeps):"
    )
    lines = [
        [
            f"{r['grace_period']}/{r['reduction_factor']}/{r['brackets']}",
            r["precise_bn"],
            ",".join(map(str, r["milestones"])),
            f"{r['epochs_ratio']:.2f}x",
            f"{r['test_full']:.4f}",
            f"{r['test_asha']:.4f}",
            f"{r['test_regret'] * 100:+.2f} ± {r['test_regret_std'] * 100:.2f}",
            f"{r['same_best']:.0%}",
        ]
        for r in reps
    ]
    header = [
        "grace/η/brackets",
        "precise_bn",
        "rungs",
        "epochs full/ASHA",
        "test full",
        "test ASHA",
        "regret (points)",
        "same best",
    ]
    for line in common.table(lines, header):
        ctx.say(line)

    defaults = schema_defaults()
    sched = {k: defaults[k] for k in ("grace_period", "reduction_factor", "brackets")}
    on = int(defaults["precise_bn"]) or ON
    if on not in ways:
        on = max(ways)
    compared = (on,) if ctx.quick else (0, on)  # quick: one sweep keeps the smoke test short
    real = [real_sweep(ctx, seed, w, size, sched, params[seed], cs[seed]) for seed in size["seeds"] for w in compared]
    ctx.say(f"\nstep 3: real sweeps (run_sweep) with the schema's defaults {defaults}:")
    lines = [
        [
            r["seed"],
            r["precise_bn"],
            f"{r['full_epochs']}/{r['epochs']} = {r['epochs_ratio']:.2f}x",
            f"{r['full_test_acc']:.3f}",
            f"{r['test_acc']:.3f}",
            "yes" if r["same_best"] else "no",
            f"{r['max_gap_to_curves']:.1e}",
        ]
        for r in real
    ]
    for line in common.table(
        lines, ["seed", "precise_bn", "epochs full/ASHA", "test full", "test ASHA", "same best", "max |Δ| vs curves"]
    ):
        ctx.say(line)

    retest_rows = retest_picks(ctx, configs, real, RETEST_SEEDS[: size["retest_seeds"]], (0, on))
    summary = {}
    for w in compared:
        rs = [r for r in real if r["precise_bn"] == w]
        xs = [x for x in retest_rows if x["precise_bn"] == w]
        summary[str(w)] = s = {
            "epochs_ratio": common.mean_std([r["epochs_ratio"] for r in rs]),
            "test_asha": common.mean_std([r["test_acc"] for r in rs]),
            "test_full": common.mean_std([r["full_test_acc"] for r in rs]),
            "retest_asha": common.mean_std([float(np.mean(x["asha"])) for x in xs]),
            "retest_full": common.mean_std([float(np.mean(x["full"])) for x in xs]),
            "retest_diff": common.mean_std([x["diff"] for x in xs]),
            "retest_seed_std": float(np.mean([x["seed_std"] for x in xs])) if xs else None,
        }
        line = f"precise_bn {w}: ASHA {s['epochs_ratio'][0]:.2f}x fewer epochs"
        if xs:
            line += (
                f"; re-tested test_acc full {s['retest_full'][0]:.3f}, ASHA {s['retest_asha'][0]:.3f} (ASHA − full "
                f"{s['retest_diff'][0] * 100:+.2f} ± {s['retest_diff'][1] * 100:.2f} points over sweep seeds; one "
                f"configuration's std over fresh seeds {s['retest_seed_std'] * 100:.2f})"
            )
        ctx.say(line)
    _plot(ctx, ranks, ways, epochs, reps, real)
    return {
        "sizes": size,
        "sweep": SWEEP,
        "defaults": defaults,
        "step1_s": step1_s,
        "curves_reused_from": reused,
        "epoch_cost": {"train_s": train_s, "eval_s": eval_s, "precise_bn_s": cost, "overhead": overhead},
        "rank_correlation": ranks,
        "top5_in_top_quarter": kept,
        "replays": reps,
        "real_sweeps": real,
        "retests": retest_rows,
        "summary": summary,
        "curves": {
            str(seed): [
                {
                    "params": p,
                    "val_acc": c["val_acc"],
                    "test_acc": c["test_acc"],
                    "train_s": float(np.mean(c["train_s"])),
                }
                for p, c in zip(params[seed], cs[seed])
            ]
            for seed in size["seeds"]
        },
    }


def _plot(ctx: Context, ranks: dict, ways: Sequence[int], epochs: int, reps: list[dict], real: list[dict]) -> None:
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for w in ways:
        xs = sorted(int(e) for e in ranks[str(w)])
        a1.plot(
            xs,
            [ranks[str(w)][e]["rho_final_val"] for e in xs],
            marker="o",
            ms=3,
            label=f"precise BN {w}" if w else "running averages",
        )
    a1.set_xlabel("epoch (a rung's milestone)")
    a1.set_ylabel("Spearman ρ with the final val_acc")
    a1.legend(fontsize=8)
    for w in ways:
        rs = [r for r in reps if r["precise_bn"] == w]
        a2.scatter(
            [r["epochs_ratio"] for r in rs],
            [r["test_regret"] * 100 for r in rs],
            s=12,
            label=f"replays, precise BN {w}" if w else "replays, running averages",
        )
    for r in real:
        a2.scatter(
            r["epochs_ratio"],
            (r["full_test_acc"] - r["test_acc"]) * 100,
            marker="x",
            color="k" if r["precise_bn"] else "tab:red",
        )
    a2.axvline(5, color="k", ls=":", lw=1)
    a2.axhline(0, color="0.5", lw=0.5)
    a2.set_xlabel("epochs full budget / ASHA")
    a2.set_ylabel("test regret vs full budget (points)")
    a2.legend(fontsize=7)
    fig.suptitle(f"precise BN and ASHA's rung decisions (BN-MLP, MNIST-1D, {epochs} epochs)")
    common.save(fig, ctx.png())
