"""``python -m benchmarks NAME [--quick] [--out DIR]``: run one benchmark (or ``all``)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS
from benchmarks.common import ROOT, Context, command, machine


def run_one(name: str, quick: bool, out: Path, quiet: bool = False) -> dict[str, Any]:
    """Run benchmark ``name``; write ``out/NAME.json`` and return what it holds."""
    module = importlib.import_module(f"benchmarks.{name}")
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(name=name, quick=quick, out=out, quiet=quiet)
    ctx.say(f"== {name}{' (quick)' if quick else ''}: {(module.__doc__ or '').strip().splitlines()[0]}")
    before = machine()
    started = time.monotonic()
    try:
        figures = module.run(ctx)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    seconds = time.monotonic() - started
    after = machine()
    record = {
        "benchmark": name,
        "quick": quick,
        "command": command(name, quick),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
        "machine": {**before, "load_avg_after": after["load_avg"]},
        "figures": figures,
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    ctx.say(
        f"== {name}: {seconds:.0f}s; load average before {before['load_avg'][0]:.1f}, after "
        f"{after['load_avg'][0]:.1f} on {before['cpus']} CPUs; wrote {out / (name + '.json')}"
    )
    return record


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=(*BENCHMARKS, "all"), help="the benchmark to run (all: one after another)")
    parser.add_argument("--quick", action="store_true", help="the smoke-test size (well under a minute)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "out",
        help="folder for NAME.json and NAME.png (default: benchmarks/out)",
    )
    args = parser.parse_args(argv)
    names = BENCHMARKS if args.name == "all" else (args.name,)
    for name in names:
        run_one(name, args.quick, args.out)
    from tuner.ray import cluster

    cluster.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
