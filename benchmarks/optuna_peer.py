"""The peer: the same sweep as a hand-written Optuna script in one process.

    python benchmarks/optuna_peer.py [--trials 32] [--epochs 20] [--jobs 2] [--seed 0]

32 trials of the MNIST-1D BN-MLP ([256, 256], SGD, cosine), learning rate log-uniform in
[0.01, 1], momentum β with 1 − β log-uniform in [0.01, 0.5] (Optuna's own log scale on 1 − β),
Optuna's SuccessiveHalvingPruner (min resource 1, reduction factor 3: ASHA's rungs at epochs 1, 3,
9), two trials at a time in threads (``n_jobs=2``, one torch thread each), the same training loop
tuner's trials run (``tuner.models.train.Trainer``) — what an engineer would write with Optuna
on a laptop. It prints one JSON line: wall seconds from the interpreter's start (imports
included), epochs trained, trials pruned, the best validation accuracy. ``benchmarks/startup.py``
runs it beside ``tuner run`` of the same sweep.
"""

from __future__ import annotations

import argparse
import json
import time

START = time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import optuna
    import torch

    from tuner.models.data import load
    from tuner.models.train import Trainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    data = load({"name": "mnist1d", "val_fraction": 0.2}).without_test()
    epochs = [0]

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        one_minus_beta = trial.suggest_float("one_minus_beta", 0.01, 0.5, log=True)
        train = {
            "epochs": args.epochs,
            "batch_size": 128,
            "optimizer": "sgd",
            "lr": lr,
            "lr_schedule": "cosine",
            "momentum": 1.0 - one_minus_beta,
            "weight_decay": 1e-4,
            "seed": 0,
        }
        trainer = Trainer({"name": "mlp", "hidden": [256, 256], "batch_norm": True}, train, data, device="cpu")
        acc = 0.0
        for metrics in trainer.epochs():
            epochs[0] += 1
            acc = metrics.get("val_acc", 0.0)
            trial.report(acc, trainer.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=args.seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    )
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    print(
        json.dumps(
            {
                "wall_s": time.time() - START,
                "epochs": epochs[0],
                "trials": len(study.trials),
                "pruned": pruned,
                "best_val_acc": study.best_value,
            }
        )
    )


if __name__ == "__main__":
    main()
