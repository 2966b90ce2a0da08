"""The commands on what a run produced: ``export``, ``retest``, ``train``, ``evaluate`` and
``report``."""

from __future__ import annotations

import argparse

from tuner.cli.status import EXIT_DRIFT, EXIT_OK
from tuner.errors import printable
from tuner.streams import output_lost


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.export_file import export_run
    from tuner.storage import is_uri

    path = export_run(args.run_dir, args.output, args.top_k, args.format)
    if args.output is None and is_uri(args.run_dir):  # uploaded beside the run, as tuner report's
        print(printable(f"exported: {args.run_dir.rstrip('/')}/{path.name} (local copy: {path})"))
    else:
        print(printable(f"exported: {path}"))
    return EXIT_OK


def cmd_retest(args: argparse.Namespace) -> int:
    import time

    from tuner.retesting import parse_duration, retest
    from tuner.spec import parse_assignments

    every = parse_duration(args.every) if args.every is not None else None
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
        if output_lost():  # the reader is gone (`| head`) or the output unwritable: no retests unseen
            return EXIT_OK
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
    from tuner.outputs import check_output
    from tuner.report import write_report
    from tuner.storage import RunStore, is_uri

    output = None if args.output is None else check_output(args.output, "-o", folder=True)  # ~ expanded
    if not is_uri(args.run_dir):
        print(printable(f"report: {write_report(args.run_dir, output)}"))
        return EXIT_OK
    store = RunStore.open(args.run_dir)  # a cloud run: its files downloaded, the report made here
    path = write_report(store.local, output)
    if output is None:  # beside the run, as for a local one
        store.push(*(str(p.relative_to(store.local)) for p in sorted(path.parent.rglob("*")) if p.is_file()))
        print(printable(f"report: {store.uri}/{path.relative_to(store.local)} (local copy: {path})"))
    else:
        print(printable(f"report: {path}"))
    return EXIT_OK
