"""The ``tuner`` command line's arguments: every command, flag and its help.

A usage error is one line and an :class:`~tuner.errors.InputError` (exit 2), never argparse's
exit; numbers are checked as they are parsed (finite, within bounds).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tuner import __version__
from tuner.arguments import parse_integer, parse_number
from tuner.errors import InputError
from tuner.retesting import MAX_RETEST_SEEDS
from tuner.spec.schema import MAX_SEED


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and raises instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message} (see {self.prog} --help)")


class _CommandParser(_Parser):
    """A command's parser: an argument it does not know is told against it (``tuner validate:
    unrecognized arguments: ...``), not against ``tuner``, which would otherwise hear of it."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        help="join a Ray cluster: auto (this machine's), HOST:PORT or ray://HOST:10001 "
        "(default: the instance tuner up keeps, else a local instance of its own on every core)",
    )


def _set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a sweep-file key for this run, validated like the file, e.g. --set train.epochs=5 "
        "--set search.num_samples=8 (repeatable; recorded in the run's provenance)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuner",
        description="Hyperparameter sweeps of PyTorch batch-norm networks on Ray Tune. Docs: docs/ in the repository.",
    )
    parser.add_argument("--version", action="version", version=f"tuner {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser, metavar="COMMAND")

    p = sub.add_parser("run", help="run a sweep file on Ray and export the best configuration")
    p.add_argument("sweep", help="the sweep file (YAML), or an export file (runs its best configuration)")
    p.add_argument(
        "--storage",
        default="runs",
        help="where the run directory goes: a folder (on a multi-node cluster, one every node mounts at "
        "the same path) or a URI such as s3://bucket/runs (default: runs)",
    )
    p.add_argument("--name", help="run name, one folder name (default: the sweep's name)")
    _address(p)
    p.add_argument("--num-samples", type=parse_integer(1), help="trials in the first round (overrides the file)")
    p.add_argument("--num-cpus", type=parse_integer(1), help="CPUs of the local Ray instance (default: all)")
    _set(p)
    p.add_argument(
        "--mlflow-uri",
        help="also log each trial as an MLflow run to this tracking store "
        "(e.g. sqlite:///mlflow.db or http://host:5000; needs tuner[mlflow])",
    )
    p.add_argument("--mlflow-experiment", help="MLflow experiment name (default: the sweep's name)")
    p.add_argument("--quiet", action="store_true", help="no progress; only where the results are")
    p.add_argument(
        "--json", action="store_true", help="print a machine-readable summary (JSON) on stdout; progress goes to stderr"
    )

    p = sub.add_parser(
        "try",
        help="run one trial of the sweep's base configuration in this process (no Ray), "
        "printing its reports and its own traceback if it fails",
    )
    p.add_argument("sweep", help="the sweep file (YAML)")
    p.add_argument("--epochs", type=parse_integer(1), help="stop after this many reports (default: the budget)")
    _set(p)

    p = sub.add_parser(
        "resume",
        help="finish an interrupted run (Ctrl-C, killed driver, failure) from its saved state",
        description="Finish an interrupted run: rounds already done are kept, the round that was running goes on "
        "from its saved state (finished trials are not re-run, unfinished ones continue from their last "
        "checkpoints, ASHA's rung records are restored), later rounds run as usual. WARNING: "
        "a run directory holds pickled state that resuming unpickles (it can run any code): resume "
        "only runs from a trusted source.",
    )
    p.add_argument("run_dir", help="the run directory (a path or a URI); must come from a trusted source")
    _address(p)
    p.add_argument("--num-cpus", type=parse_integer(1), help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress; only where the results are")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary (JSON) on stdout")

    p = sub.add_parser("validate", help="check a sweep file and report every problem (imports its functions)")
    p.add_argument("sweep", help="the sweep file (YAML)")
    _set(p)

    p = sub.add_parser("space", help="print N sampled configurations, one JSON object a line (no Ray started)")
    p.add_argument("sweep", help="the sweep file (YAML)")
    p.add_argument("-n", type=parse_integer(1), required=True, help="number of configurations")
    p.add_argument("--seed", type=parse_integer(0, MAX_SEED), help="search seed (default: the file's search.seed)")

    p = sub.add_parser("export", help="write a run's best configuration as an export file")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("-o", "--output", help="file to write (default: RUN_DIR/best.yaml or best.json)")
    p.add_argument("--top-k", type=parse_integer(1), default=5, help="configurations kept in 'top' (default: 5)")
    p.add_argument("--format", choices=("yaml", "json"), help="default: from the file name, else yaml")

    p = sub.add_parser(
        "retest",
        help="re-train the export's top configurations with fresh seeds; rank with CIs; flag ranking changes and drift",
    )
    p.add_argument("export", help="the export file (rewritten with the new ranking and a retest section)")
    p.add_argument(
        "--seeds",
        type=parse_integer(2, MAX_RETEST_SEEDS),
        default=3,
        help=f"fresh seeds per configuration (2 to {MAX_RETEST_SEEDS}, default 3)",
    )
    p.add_argument(
        "--top-k", type=parse_integer(1), help="configurations to re-test (default: all in the export's top)"
    )
    p.add_argument(
        "--every", metavar="DURATION", help="keep re-testing every DURATION (30s, 15m, 12h, 1d) until stopped"
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a data key for this retest, e.g. --data seed=7 or --data path=new.npz (repeatable)",
    )
    p.add_argument(
        "--tolerance",
        type=parse_number,
        default=0.02,
        help="flag drift when the best's mean score got worse by more than this since the last retest "
        "(metric units, default: 0.02)",
    )
    p.add_argument("--fail-on-drift", action="store_true", help="exit with status 3 when drift was flagged")
    _address(p)

    p = sub.add_parser("train", help="train the export's best configuration on train+val and save the model")
    p.add_argument("export", help="the export file")
    p.add_argument("-o", "--output", required=True, help="the model file to write, e.g. model.pt")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="override a data key")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")

    p = sub.add_parser("evaluate", help="test metrics of a saved model (eval mode: BN running statistics)")
    p.add_argument("model", help="a file written by tuner train")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluate on other data, e.g. --data seed=7 (repeatable)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="import the model or data function the file names (a model file is data: off by default)",
    )

    p = sub.add_parser("report", help="write an HTML report of a run with its figures (no Ray started)")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("-o", "--output", help="folder to write index.html and the figures to (default: RUN_DIR/report)")
    p.add_argument(
        "--watch",
        nargs="?",
        const=10,
        type=parse_integer(1),
        metavar="SECONDS",
        help="rewrite the page every SECONDS (default 10) while the run goes on, the page reloading itself; "
        "stops when the run is over or on Ctrl-C",
    )

    p = sub.add_parser(
        "up",
        help="start a local Ray instance that stays up: later commands without --address join it "
        "instead of starting their own (1-3 s sooner each on a 2-core laptop)",
    )
    p.add_argument("--num-cpus", type=parse_integer(1), help="its CPUs (default: all)")
    p.add_argument("--num-gpus", type=parse_integer(0), help="its GPUs (default: all Ray finds)")
    p = sub.add_parser("down", help="stop the local Ray instance tuner up started")
    p.add_argument(
        "--force",
        action="store_true",
        help="stop it even while commands run on it: each is interrupted first, as Ctrl-C would (a run resumes)",
    )
    return parser
