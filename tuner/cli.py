"""The ``tuner`` command line (contract in ``docs/design.md``).

Exit status: 0 done; 2 bad input (usage, sweep, export or model file, data), one line a
problem naming the file, the key path and the rule, nothing started and nothing written;
1 the run itself failed (one readable block, and where the full logs are), or a bug (one
line naming the log file that holds its traceback); 3 ``retest --fail-on-drift`` flagged a
drift; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tuner.errors import InputError, RunError, log_bug
from tuner.parser import build_parser

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_DRIFT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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
    if args.json:
        print(json.dumps(summary_json(summary)))
    elif args.quiet:
        print(f"run directory: {summary.location}")
        if summary.export_path:
            print(f"exported best config: {summary.export_path}")
    else:
        for line in summary.lines():
            print(line)
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
            "export": str(summary.export_path) if summary.export_path else None,
            "status": run.meta.status.value,
            "wall_s": summary.wall_s,
            "metric": run.metric,
            "mode": run.mode,
            "trials": counts,
            "best": {"trial": best[0].trial_id, "score": best[0].score(run.metric), "params": best[0].params}
            if best
            else None,
        }
    )


def cmd_run(args: argparse.Namespace) -> int:
    from tuner.runner import run_sweep
    from tuner.spec import load_sweep
    from tuner.storage import check_storage

    if args.mlflow_experiment is not None and args.mlflow_uri is None:
        raise InputError("--mlflow-experiment: needs --mlflow-uri")
    if args.mlflow_uri is not None:
        from tuner.tracking import require_mlflow

        require_mlflow()
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
    from tuner.local import try_trial
    from tuner.spec import load_sweep

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
    from tuner.runner import resume_sweep

    summary = resume_sweep(args.run_dir, address=args.address, num_cpus=args.num_cpus, write=_say(args))
    return _summary(args, summary)


def cmd_validate(args: argparse.Namespace) -> int:
    from tuner.spec import load_sweep

    sweep = load_sweep(args.sweep, _overrides(args))
    s = sweep.search
    names = ", ".join(p.path for p in s.parameters) or "nothing"
    what = f"{sweep.model['name']} (built-in trainer)" if sweep.builtin else sweep.function
    data = (sweep.data or {}).get("name", "no data")
    print(
        f"{args.sweep}: ok: {what} on {data}, {s.method} search over {names}, {s.num_samples} trials, "
        f"scheduler {sweep.scheduler.name}, metric {sweep.metric} ({sweep.mode})"
    )
    return EXIT_OK


def cmd_space(args: argparse.Namespace) -> int:
    from tuner.ray.search import sample
    from tuner.spec import load_sweep

    sweep = load_sweep(args.sweep)
    seed = sweep.search.seed if args.seed is None else args.seed
    out = sys.stdout
    for config in sample(sweep.search.parameters, sweep.search.method, args.n, seed, sweep.metric, sweep.mode):
        out.write(json.dumps(config, default=str) + "\n")
    out.flush()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.export_file import export_run

    path = export_run(args.run_dir, args.output, args.top_k, args.format)
    print(f"exported: {path}")
    return EXIT_OK


def cmd_retest(args: argparse.Namespace) -> int:
    import time

    from tuner.retesting import parse_duration, retest
    from tuner.spec import parse_assignments

    every = parse_duration(args.every) if args.every else None
    data = parse_assignments(args.data, "--data")
    while True:
        entry = retest(
            args.export,
            seeds=args.seeds,
            top_k=args.top_k,
            data=data,
            address=args.address,
            tolerance=args.tolerance,
            write=lambda line: print(line, flush=True),
        )
        if entry.drift and args.fail_on_drift:
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
    from tuner.spec import parse_assignments

    train(
        args.export,
        args.output,
        data=parse_assignments(args.data, "--data"),
        device=args.device,
        write=lambda line: print(line, flush=True),
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tuner.final import evaluate_file
    from tuner.spec import parse_assignments

    r = evaluate_file(
        args.model, data=parse_assignments(args.data, "--data"), device=args.device, trust_code=args.trust_code
    )
    note = "same data as at training" if r["same_data"] else "other data than at training"
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in r.items() if k.startswith("test_"))
    trained = ", ".join(
        f"{k} {v:.4f}" for k, v in r["trained"].items() if k.startswith("test_") and isinstance(v, float)
    )
    print(f"{metrics}  ({r['n']} samples, {note}; at training: {trained})")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    if args.watch is not None:
        from tuner.report.watch import watch

        watch(args.run_dir, args.output, args.watch, say=lambda line: print(line, flush=True))
        return EXIT_OK
    from tuner.files import check_output
    from tuner.report import write_report
    from tuner.storage import RunStore, is_uri

    output = None if args.output is None else check_output(args.output, "-o", folder=True)  # ~ expanded
    if not is_uri(args.run_dir):
        print(f"report: {write_report(args.run_dir, output)}")
        return EXIT_OK
    store = RunStore.open(args.run_dir)  # a cloud run: its files downloaded, the report made here
    path = write_report(store.local, output)
    if output is None:  # beside the run, as for a local one
        store.push(*(str(p.relative_to(store.local)) for p in sorted(path.parent.rglob("*")) if p.is_file()))
        print(f"report: {store.uri}/{path.relative_to(store.local)} (local copy: {path})")
    else:
        print(f"report: {path}")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    import datetime as dt

    from tuner.ray import instance

    inst, new = instance.start(num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    since = dt.datetime.fromtimestamp(inst.started).strftime("%Y-%m-%d %H:%M")
    res = instance.resources(inst.address)
    size = f" ({res.get('CPU', 0):g} CPUs / {res.get('GPU', 0):g} GPUs)" if res else ""
    if new:
        print(f"Ray instance up at {inst.address}{size}: commands without --address join it; tuner down stops it")
    else:
        print(f"a Ray instance is already up at {inst.address}{size}, since {since}; tuner down stops it")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from tuner.ray import instance

    inst = instance.stop()
    print(f"stopped the Ray instance at {inst.address}" if inst else "no Ray instance of tuner up is running")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "try": cmd_try,
    "resume": cmd_resume,
    "validate": cmd_validate,
    "space": cmd_space,
    "export": cmd_export,
    "retest": cmd_retest,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "up": cmd_up,
    "down": cmd_down,
}


def _from_user_code(error: BaseException, refs: Sequence[str]) -> bool:
    """Whether ``error`` was raised in the user's own code (:func:`tuner.trial.user_frames`): `tuner
    try` shows the user that traceback; anything else is tuner's bug and goes to a log."""
    from tuner.trial import user_frames

    theirs = [
        m.__file__
        for m in (sys.modules.get(ref.partition(":")[0]) for ref in refs if not ref.startswith("tuner."))
        if m is not None and getattr(m, "__file__", None)
    ]
    return bool(user_frames(error, theirs))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tuner`` command; returns the exit status (the command itself is
    :func:`tuner.__main__.entry`, which also ends the process quickly)."""
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return COMMANDS[args.command](args)
    except InputError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        return EXIT_INPUT
    except RunError as e:
        print(f"tuner: {e}", file=sys.stderr)
        for line in e.details:
            print(f"  {line}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tuner space ... | head`: the reader is gone, nothing is wrong
        sys.stderr.close()
        return EXIT_OK
    except SystemExit:
        raise
    except BaseException as e:
        if command == "try" and getattr(e, "tuner_user_code", False):
            import traceback  # the user's function failed: its own traceback, what `try` is for

            traceback.print_exc()
            print(f"tuner try: the trial function failed: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
            return EXIT_FAILED
        path = log_bug(e, f"tuner {' '.join(sys.argv[1:] if argv is None else argv)[:2000]}")
        where = f"the traceback is in {path}" if path else "no log could be written"
        print(
            f"tuner: internal error: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]} (a bug in tuner; "
            f"{where})",
            file=sys.stderr,
        )
        return EXIT_FAILED
