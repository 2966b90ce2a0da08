"""``tuner up`` and ``tuner down``: the local Ray instance kept up between commands
(:mod:`tuner.ray.instance`)."""

from __future__ import annotations

import argparse

from tuner.cli.status import EXIT_OK
from tuner.errors import InputError, printable, warn_stderr


def cmd_up(args: argparse.Namespace) -> int:
    import datetime as dt

    from tuner.ray import instance

    inst, new = instance.start(num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    since = dt.datetime.fromtimestamp(inst.started).strftime("%Y-%m-%d %H:%M")
    res = instance.resources(inst.address)
    size = f" ({res.get('CPU', 0):g} CPUs / {res.get('GPU', 0):g} GPUs)" if res else ""
    if new:
        print(f"Ray instance up at {inst.address}{size}: commands without --address join it; tuner down stops it")
        return EXIT_OK
    for flag, asked, key in (("--num-cpus", args.num_cpus, "CPU"), ("--num-gpus", args.num_gpus, "GPU")):
        if asked is not None and res and res.get(key, 0) != asked:  # asked for another size: not silently kept
            raise InputError(
                f"{flag} {asked}: the Ray instance already up at {inst.address} has {res.get(key, 0):g} "
                f"{key}s; tuner down first to start one of another size"
            )
    print(f"a Ray instance is already up at {inst.address}{size}, since {since}; tuner down stops it")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from tuner.ray import drivers, instance

    kept = instance.running()
    running = (drivers.running(kept.address) or []) if kept is not None else []
    if running and kept is not None:
        first, more = running[0], f" and {len(running) - 1} more" if len(running) > 1 else ""
        named = f"{printable(first.shown())[:200]!r} (pid {first.pid}){more}"
        if not args.force:  # each would die with it, its run left marked running
            raise InputError(
                f"the Ray instance at {kept.address} is in use by {named}: let it end, or tuner down "
                "--force to interrupt it as Ctrl-C would (a run is saved and resumes with tuner resume)"
            )
        left = drivers.interrupt(kept.address, running)
        print(f"interrupted {named} as Ctrl-C would" + (": a run resumes with tuner resume" if not left else ""))
        if left:
            pids = ", ".join(str(d.pid) for d in left)
            warn_stderr(
                f"still on it (pid {pids}; it ignores Ctrl-C, or did not end in 30 s): the instance stops under it"
            )
    inst = instance.stop()
    print(f"stopped the Ray instance at {inst.address}" if inst else "no Ray instance of tuner up is running")
    return EXIT_OK
