"""The ``tuner`` command line (contract in DESIGN.md).

Exit status: 0 done; 2 bad input (usage, sweep or export file), one line a problem naming
the file, the key path and the rule, nothing started and nothing written; 1 the run
itself failed; 3 ``retest --fail-on-drift`` flagged a drift; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from tuner.errors import InputError, RunError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and raises instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuner", description="Hyperparameter sweeps of PyTorch batch-norm networks on Ray Tune.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run a sweep file on Ray and export the best configuration")
    p.add_argument("sweep", help="the sweep file (YAML)")
    p.add_argument("--storage", default="runs",
                   help="where the run directory goes: a folder (on a multi-node cluster, one every node mounts at "
                        "the same path) or a URI such as s3://bucket/runs, gs://bucket/runs (default: runs)")
    p.add_argument("--name", help="run name (default: the sweep's name)")
    p.add_argument("--address", help="join a Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
                                     "(default: start a local instance on every core)")
    p.add_argument("--num-samples", type=_positive_int, help="trials in the first round (overrides the file)")
    p.add_argument("--num-cpus", type=_positive_int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--mlflow-uri", help="also log each trial as an MLflow run to this tracking store "
                                        "(e.g. sqlite:///mlflow.db or http://host:5000; needs tuner[mlflow])")
    p.add_argument("--mlflow-experiment", help="MLflow experiment name (default: the sweep's name)")

    p = sub.add_parser(
        "resume", help="finish an interrupted run (Ctrl-C, killed driver, failure) from its saved state",
        description="Finish an interrupted run: rounds already done are kept, the round that was running goes on "
                    "from its saved state (finished trials are not re-run, unfinished ones continue from their last "
                    "checkpoints, ASHA's rung records are restored), later rounds run as usual. WARNING: "
                    "a run directory holds pickled state that resuming unpickles (it can run any code): resume "
                    "only runs from a trusted source.")
    p.add_argument("run_dir", help="the run directory (a path or a URI); must come from a trusted source")
    p.add_argument("--address", help="join a Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
                                     "(default: start a local instance on every core)")
    p.add_argument("--num-cpus", type=_positive_int, help="CPUs of the local Ray instance (default: all)")

    p = sub.add_parser("validate", help="check a sweep file and report every problem")
    p.add_argument("sweep")

    p = sub.add_parser("space", help="print N sampled configurations, one JSON object a line (no Ray started)")
    p.add_argument("sweep")
    p.add_argument("-n", type=_positive_int, required=True, help="number of configurations")
    p.add_argument("--seed", type=_nonneg_int, help="search seed (default: the file's search.seed)")

    p = sub.add_parser("export", help="write a run's best configuration as an export file")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", help="file to write (default: RUN_DIR/best.yaml or best.json)")
    p.add_argument("--top-k", type=_positive_int, default=5, help="configurations kept in 'top' (default: 5)")
    p.add_argument("--format", choices=("yaml", "json"), help="default: from the file name, else yaml")

    p = sub.add_parser("retest", help="re-train the export's top configurations with fresh seeds; rank with CIs; "
                                      "flag ranking changes and drift")
    p.add_argument("export", help="the export file (rewritten with the new ranking and a retest section)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="fresh seeds per configuration (default: 3)")
    p.add_argument("--top-k", type=_positive_int, help="configurations to re-test (default: all in the export's top)")
    p.add_argument("--every", metavar="DURATION", help="keep re-testing every DURATION (30s, 15m, 12h, 1d) until stopped")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data key for this retest, e.g. --data seed=7 or --data path=new.npz (repeatable)")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="flag drift when the best's mean score fell by more than this since the last retest "
                        "(metric units, default: 0.02)")
    p.add_argument("--fail-on-drift", action="store_true", help="exit with status 3 when drift was flagged")
    p.add_argument("--address", help="the Ray cluster to run on (default: a local instance)")

    p = sub.add_parser("train", help="train the export's best configuration on train+val and save the model")
    p.add_argument("export")
    p.add_argument("-o", "--output", required=True, help="the model file to write, e.g. model.pt")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="override a data key")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")

    p = sub.add_parser("evaluate", help="test accuracy of a saved model (eval mode: BN running statistics)")
    p.add_argument("model", help="a file written by tuner train")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluate on other data, e.g. --data seed=7 (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")

    p = sub.add_parser("report", help="write an HTML report of a run with its figures (no Ray started)")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", help="folder to write index.html and the figures to (default: RUN_DIR/report)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from tuner.runner import describe, run_sweep
    from tuner.spec import load_sweep

    if args.mlflow_experiment is not None and args.mlflow_uri is None:
        raise InputError("--mlflow-experiment: needs --mlflow-uri")
    if args.mlflow_uri is not None:
        from tuner.tracking import require_mlflow

        require_mlflow()
    overrides: dict[str, Any] = {}
    if args.name:
        overrides["name"] = args.name
    if args.num_samples:
        overrides["search.num_samples"] = args.num_samples
    sweep = load_sweep(args.sweep, overrides)
    summary = run_sweep(sweep, storage=args.storage, address=args.address, num_cpus=args.num_cpus,
                        write=lambda line: print(line, flush=True), mlflow_uri=args.mlflow_uri,
                        mlflow_experiment=args.mlflow_experiment)
    for line in describe(summary):
        print(line)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    from tuner.runner import describe, resume_sweep

    summary = resume_sweep(args.run_dir, address=args.address, num_cpus=args.num_cpus,
                           write=lambda line: print(line, flush=True))
    for line in describe(summary):
        print(line)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from tuner.spec import load_sweep

    sweep = load_sweep(args.sweep)
    s = sweep.search
    names = ", ".join(p.path for p in s.parameters) or "nothing"
    print(f"{args.sweep}: ok: {sweep.model['name']} on {sweep.data['name']}, {s.method} search over {names}, "
          f"{s.num_samples} trials, scheduler {sweep.scheduler.name}")
    return EXIT_OK


def cmd_space(args: argparse.Namespace) -> int:
    from tuner.backend import sample
    from tuner.spec import load_sweep

    sweep = load_sweep(args.sweep)
    seed = sweep.search.seed if args.seed is None else args.seed
    for config in sample(sweep.search.parameters, sweep.search.method, args.n, seed, sweep.metric, sweep.mode):
        print(json.dumps(config))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.export_file import export_run

    path = export_run(args.run_dir, args.output, args.top_k, args.format)
    print(f"exported: {path}")
    return EXIT_OK


EXIT_DRIFT = 3


def cmd_retest(args: argparse.Namespace) -> int:
    import time

    from tuner.retesting import parse_duration, parse_overrides, retest

    every = parse_duration(args.every) if args.every else None
    data = parse_overrides(args.data)
    while True:
        entry = retest(args.export, seeds=args.seeds, top_k=args.top_k, data=data, address=args.address,
                       tolerance=args.tolerance, write=lambda line: print(line, flush=True))
        if entry["drift"] and args.fail_on_drift:
            return EXIT_DRIFT
        if every is None:
            return EXIT_OK
        print(f"next retest in {args.every}", flush=True)
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            print("stopped", flush=True)
            return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from tuner.final import train
    from tuner.retesting import parse_overrides

    train(args.export, args.output, data=parse_overrides(args.data), device=args.device,
          write=lambda line: print(line, flush=True))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tuner.final import evaluate_file
    from tuner.retesting import parse_overrides

    r = evaluate_file(args.model, data=parse_overrides(args.data), device=args.device)
    note = "same data as at training" if r["same_data"] else "other data than at training"
    print(f"test_acc {r['test_acc']:.4f}  test_loss {r['test_loss']:.4f}  ({r['n']} samples, {note}; "
          f"at training: test_acc {r['trained']['test_acc']:.4f})")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from tuner.report import write_report

    path = write_report(args.run_dir, args.output)
    print(f"report: {path}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "validate": cmd_validate, "space": cmd_space, "export": cmd_export,
            "retest": cmd_retest, "train": cmd_train, "evaluate": cmd_evaluate, "report": cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tuner`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except InputError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        return EXIT_INPUT
    except RunError as e:
        print(f"tuner: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
