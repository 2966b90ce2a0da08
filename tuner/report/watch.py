"""``tuner report RUN_DIR --watch``: the report rewritten while a run goes on.

The page is rewritten every ``every`` seconds and reloads itself in the browser at the same
pace (a meta refresh) while ``run.json`` says ``running``; once the run is done, failed or
interrupted, the page is written a last time without the refresh and the watch ends. So it
does when ``run.json`` still says ``running`` but the run's driver is gone (killed: no process
holds its lock, :func:`tuner.lock.driver_state`), with a line saying to resume it. Ctrl-C ends
it too (the page on disk is whole: each write is atomic), and so does a reader of its lines
that went away (``| head``): nothing is left to tell of the rewrites.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tuner.errors import printable, warn_stderr
from tuner.lock import driver_state
from tuner.records import RunStatus
from tuner.report import write
from tuner.streams import output_lost


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
    warned: set[str] = set()

    def warn_once(line: str) -> None:  # the same damage is told once, not at every rewrite
        if line not in warned:
            warned.add(line)
            warn_stderr(line)

    try:
        while True:
            gone = driver_state(Path(run_dir)) == "gone"  # a lock no process holds: the driver died
            path, status = write(run_dir, out_dir, None if gone else refresh, warn_once)
            if status is not RunStatus.RUNNING:
                say(printable(f"report: {path} (the run is {status.value})"))
                return path
            if gone:
                say(printable(f"report: {path} (run.json says the run is going)"))
                say(
                    printable(
                        f"the run's driver is not running (it was killed?): continue it with tuner resume {run_dir}"
                    )
                )
                return path
            say(printable(f"report: {path} (the run is going: rewritten every {refresh} s; Ctrl-C stops)"))
            if output_lost():  # the reader is gone (`| head`), or the output unwritable: the watch ends
                return path
            sleep(every)
    except KeyboardInterrupt:
        say("stopped")
        if path is None:
            raise
        return path
