"""The commands on a sweep file and its run: ``run``, ``try``, ``resume``, ``validate``,
``space``; and how a run's end is shown (its summary, or ``--json``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tuner.cli.status import EXIT_OK
from tuner.errors import InputError, RunError, printable
from tuner.streams import output_lost


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Where progress goes: stdout, stderr with --json, nowhere with --quiet."""
    from tuner.progress import Console  # on a terminal, the live progress bar is drawn on its stream

    if getattr(args, "quiet", False):
        return Console(None)
    return Console(sys.stderr if getattr(args, "json", False) else sys.stdout)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from tuner.spec import parse_assignments

    return parse_assignments(args.set, "--set")


def _summary(args: argparse.Namespace, summary: Any) -> int:
    if args.json:  # the lines for a person go to stderr, as every line but the JSON does
        for line in summary.lines():
            print(printable(line), file=sys.stderr)
        print(json.dumps(summary_json(summary)))
    elif args.quiet:
        print(f"run directory: {summary.location}")
        if summary.export_line:
            print(printable(summary.export_line))
    else:
        for line in summary.lines():
            print(printable(line))
    return EXIT_OK


def summary_json(summary: Any) -> dict[str, Any]:
    """The machine-readable end of a run (``--json``)."""
    from tuner.files import strict

    run = summary.run
    counts: dict[str, int] = {}
    for t in run.trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    best = run.ranked()[:1]
    return strict(
        {
            "run_dir": summary.location,
            "export": summary.export_location,  # a cloud run's: its URI (the run's own copy)
            "export_local_copy": summary.export_local_copy,  # a cloud run's copy in its local mirror
            "status": run.meta.status.value,
            "wall_s": summary.wall_s,
            "metric": run.metric,
            "mode": run.mode,
            "trials": counts,
            "errors": list(run.meta.failures),  # the first error of each kind, when trials failed
            "best": {"trial": best[0].trial_id, "score": best[0].score(run.metric), "params": best[0].params}
            if best
            else None,
        }
    )


def outcome_json(status: str, run_dir: str | None, **fields: Any) -> str:
    """The machine-readable end (``--json``) of a run that was not done: ``status``
    (``failed``, ``bad_input`` or ``interrupted``), its run directory (None when none was
    made) and ``fields`` (``error`` and ``errors``; ``problems``), the keys of
    :func:`summary_json` that apply."""
    from tuner.files import dumps_json

    return dumps_json({"status": status, "run_dir": None if run_dir is None else str(run_dir), **fields})


def cmd_run(args: argparse.Namespace) -> int:
    from tuner.export_file import load_sweep
    from tuner.runner import run_sweep
    from tuner.storage import check_storage

    if args.mlflow_experiment is not None and args.mlflow_uri is None:
        raise InputError("--mlflow-experiment: needs --mlflow-uri")
    if args.mlflow_uri is not None:
        from tuner.tracking import check_uri

        check_uri(args.mlflow_uri)
    overrides = _overrides(args)
    if args.name is not None:  # an empty --name is an error, not "the sweep's name"
        overrides["name"] = args.name
    if args.num_samples:
        overrides["search.num_samples"] = args.num_samples
    sweep = load_sweep(args.sweep, overrides)
    check_storage(args.storage, reach=True)  # a missing bucket is said before Ray starts
    summary = run_sweep(
        sweep,
        storage=args.storage,
        address=args.address,
        num_cpus=args.num_cpus,
        write=_say(args),
        mlflow_uri=args.mlflow_uri,
        mlflow_experiment=args.mlflow_experiment,
    )
    return _summary(args, summary)


def cmd_try(args: argparse.Namespace) -> int:
    from tuner.export_file import load_sweep
    from tuner.local import try_trial

    sweep = load_sweep(args.sweep, _overrides(args))
    try:
        try_trial(sweep, args.epochs, write=lambda line: print(line, flush=True))
    except (InputError, RunError):
        raise
    except Exception as e:
        e.tuner_user_code = _from_user_code(e, [sweep.trainer, *sweep.code_refs()])  # type: ignore[attr-defined]
        raise
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    from tuner.resuming import resume_sweep

    summary = resume_sweep(args.run_dir, address=args.address, num_cpus=args.num_cpus, write=_say(args))
    return _summary(args, summary)


def cmd_validate(args: argparse.Namespace) -> int:
    from tuner.export_file import load_sweep
    from tuner.space import grid_size

    sweep = load_sweep(args.sweep, _overrides(args))
    s = sweep.search
    names = ", ".join(p.path for p in s.parameters) or "nothing"
    what = f"{sweep.model['name']} (built-in trainer)" if sweep.builtin else sweep.function
    data = (sweep.data or {}).get("name", "no data")
    trials = grid_size(s.parameters) if s.method == "grid" else s.num_samples  # a grid: each point once
    print(
        f"{args.sweep}: ok: {what} on {data}, {s.method} search over {names}, {trials} trials, "
        f"scheduler {sweep.scheduler.name}, metric {sweep.metric} ({sweep.mode})"
    )
    return EXIT_OK


def cmd_space(args: argparse.Namespace) -> int:
    from tuner.export_file import load_sweep
    from tuner.files import dumps_json
    from tuner.ray.search import sample

    sweep = load_sweep(args.sweep)
    seed = sweep.search.seed if args.seed is None else args.seed
    out = sys.stdout
    for config in sample(sweep.search.parameters, sweep.search.method, args.n, seed, sweep.metric, sweep.mode):
        out.write(dumps_json(config) + "\n")  # strict JSON, as every file tuner writes
        if output_lost():  # the reader is gone (`| head`) or the output unwritable: no more draws
            break
    out.flush()
    return EXIT_OK


def _from_user_code(error: BaseException, refs: Sequence[str]) -> bool:
    """Whether ``error`` was raised in the user's own code (:func:`tuner.trial.user_frames`): `tuner
    try` shows the user that traceback; anything else is tuner's bug and goes to a log."""
    from tuner.failures import user_files, user_frames

    return bool(user_frames(error, user_files(refs)))
