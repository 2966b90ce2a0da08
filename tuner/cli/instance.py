"""``tuner up`` and ``tuner down``: the local Ray instance kept up between commands
(:mod:`tuner.ray.instance`)."""

from __future__ import annotations

import argparse

from tuner.cli.status import EXIT_OK
from tuner.errors import InputError


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
    from tuner.ray import instance

    inst = instance.stop()
    print(f"stopped the Ray instance at {inst.address}" if inst else "no Ray instance of tuner up is running")
    return EXIT_OK
