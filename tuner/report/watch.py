"""``tuner report RUN_DIR --watch``: the report rewritten while a run goes on.

The page is rewritten every ``every`` seconds and reloads itself in the browser at the same
pace (a meta refresh) while ``run.json`` says ``running``; once the run is done, failed or
interrupted, the page is written a last time without the refresh and the watch ends. Ctrl-C
ends it too (the page on disk is whole: each write is atomic).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tuner.records import RunStatus
from tuner.report import write


def watch(
    run_dir: str | Path,
    out_dir: str | Path | None,
    every: float,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Rewrite the report until the run is over (or Ctrl-C); returns the page's path.

    Raises:
        InputError: as :func:`tuner.report.write_report`, on any rewrite.
    """
    refresh = max(1, round(every))
    path = None
    try:
        while True:
            path, status = write(run_dir, out_dir, refresh)
            if status is not RunStatus.RUNNING:
                say(f"report: {path} (the run is {status.value})")
                return path
            say(f"report: {path} (the run is going: rewritten every {refresh} s; Ctrl-C stops)")
            sleep(every)
    except KeyboardInterrupt:
        say("stopped")
        if path is None:
            raise
        return path
