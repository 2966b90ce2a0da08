"""``tuner up`` and ``tuner down``: the local Ray instance kept up between commands
(:mod:`tuner.ray.instance`)."""

from __future__ import annotations

import argparse

from tuner.cli.status import EXIT_OK


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
