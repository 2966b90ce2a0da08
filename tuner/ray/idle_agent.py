"""Stands in for Ray's dashboard agent on an instance of the command's own where that agent
would serve nothing: Ray installed without its dashboard's dependencies (``ray[tune]``, not
``ray[default]``), where the agent imports every dashboard module for ~1 s of CPU, finds that
none can load ("Loaded 0 modules" in its log), and then only watches its raylet
(:func:`tuner.ray.head.started_lean` starts the raylet with this as its agent's command).

Like the agent, it lives as long as the raylet that started it: the raylet hands its agents a
pipe as their standard input, which reads as closed once the raylet is gone; without that pipe
it watches its parent. The raylet ends it when the raylet stops. The ports the agent would have
reported as not in use are written before the raylet starts (``head._agent_ports_told``).

Run by path with ``python -S -E``: the standard library only, nothing imported from the
environment, so it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import stat
import time

POLL_S = 0.4  # how often the parent is looked at without a pipe (the agent's own interval)


def main() -> None:
    """Return once the raylet that started this process is gone."""
    parent = os.getppid()
    try:
        piped = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        piped = False
    if piped:
        while os.read(0, 4096):  # the raylet writes nothing: this returns b"" when it is gone
            pass
        return
    while os.getppid() == parent:
        time.sleep(POLL_S)


if __name__ == "__main__":
    main()
