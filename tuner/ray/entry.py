"""A worker process's first code on an instance of the command's own: tuner's import hook
(:mod:`tuner.ray.deferred`), then Ray's worker (``default_worker.py``) as the process's main
script, with the arguments the raylet gave.

The raylet starts each Python worker with this file in the place of Ray's
(:func:`tuner.ray.head.worker_command`). Ray's worker imports ``ray`` first thing, which imports
``requests`` and ``jsonschema`` (~0.1 s of a laptop core's CPU; a trial never uses them), and
Ray Tune's actor class later brings pandas and Ray Data. With the hook installed before any of
that, each is loaded only where it is used. Ray's own way to run a module in its workers
(``preload_python_modules``) runs it once the worker has connected, after ``import ray``.

It takes the place of Ray's script in the command, not an argument before it, so what Ray does
to that command still works: a worker with a runtime environment goes through Ray's
``setup_worker.py``, which passes the rest of the command on, and a container's runtime
environment (``image_uri``) puts the container's own ``default_worker.py`` in this file's place.

Run by its path, so it imports nothing of its folder: Python puts this file's folder first on
``sys.path``, where Ray's worker expects its own. Where ``tuner`` cannot be imported before the
worker has connected (a source tree the driver found through its own path, which Ray hands to
its workers once they connect), Ray's worker starts as it would have, without the hook.
"""

import os
import sys


def default_worker() -> str:
    """The path of the installed Ray's worker script, found without importing ``ray``."""
    import importlib.util

    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        raise SystemExit("tuner.ray.entry: ray is not installed")
    return os.path.join(os.path.dirname(spec.origin), "_private", "workers", "default_worker.py")


def main() -> None:
    """Run Ray's worker as ``python default_worker.py ARGS`` would have, the hook installed."""
    import runpy

    del sys.path[0]  # this file's folder
    sys.argv[0] = default_worker()
    sys.path.insert(0, os.path.dirname(sys.argv[0]))

    try:
        import tuner.ray.deferred  # noqa: F401  # installs the hook
    except Exception as e:  # tuner found only once Ray adds the driver's paths: Ray's worker as is
        print(f"tuner: Ray's worker starts without tuner's import hook ({e})", file=sys.stderr)

    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
