"""A worker process's first code on an instance of the command's own: tuner's import hook
(:mod:`tuner.ray.deferred`), then Ray's worker as the process's main script.

The raylet starts each worker as ``python <this file> <Ray's default_worker.py> <its
arguments>`` (:func:`tuner.ray.head.worker_command`). Ray's worker imports ``ray`` first thing,
which imports ``requests`` and ``jsonschema`` (~0.1 s of a laptop core's CPU; a trial never
uses them), and Ray Tune's actor class later brings pandas and Ray Data. With the hook
installed before any of that, each is loaded only where it is used. Ray's own way to run a
module in its workers (``preload_python_modules``) runs it once the worker has connected,
after ``import ray``.

Run by its path, so it imports nothing of its folder: Python puts this file's folder first on
``sys.path``, and Ray's worker expects its own there instead.
"""

import os
import sys


def main() -> None:
    """Hand the process to the script named by the first argument, as ``python SCRIPT ARGS``
    would have, with the hook installed."""
    import runpy

    import tuner.ray.deferred  # noqa: F401  # installs the hook

    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python entry.py SCRIPT [ARGUMENTS]")
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    main()
