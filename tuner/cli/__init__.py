"""The ``tuner`` command line (contract in ``docs/design.md``): :func:`main` runs a command
of :mod:`.sweep` (a sweep and its run), :mod:`.results` (what a run produced) or
:mod:`.instance` (``up``/``down``), parsed by :mod:`.parser`, and turns what it raises into
an exit status (:mod:`.status`) and one line.

Exit status: 0 done; 2 bad input (usage, sweep, export or model file, data), one line a
problem naming the file, the key path and the rule, nothing started and nothing written;
1 the run itself failed (one readable block, and where the full logs are), or a bug (one
line naming the log file that holds its traceback); 3 ``retest --fail-on-drift`` flagged a
drift; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tuner import signals
from tuner.cli.instance import cmd_down, cmd_up
from tuner.cli.parser import build_parser
from tuner.cli.results import cmd_evaluate, cmd_export, cmd_report, cmd_retest, cmd_train
from tuner.cli.status import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from tuner.cli.sweep import cmd_resume, cmd_run, cmd_space, cmd_try, cmd_validate
from tuner.errors import InputError, RunError, first_line, log_bug, message, printable

COMMANDS = {
    "run": cmd_run,
    "try": cmd_try,
    "resume": cmd_resume,
    "validate": cmd_validate,
    "space": cmd_space,
    "export": cmd_export,
    "retest": cmd_retest,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "up": cmd_up,
    "down": cmd_down,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tuner`` command; returns the exit status (the command itself is
    :func:`tuner.__main__.entry`, which also ends the process quickly)."""
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        with signals.as_interrupt():  # SIGTERM, SIGHUP end every command as Ctrl-C does (exit 130)
            return COMMANDS[args.command](args)
    except InputError as e:
        for line in e.problems:
            print(printable(line), file=sys.stderr)
        return EXIT_INPUT
    except RunError as e:
        print(printable(f"tuner: {e}"), file=sys.stderr)
        for detail in e.details:  # a traceback's frames keep their lines; each line is escaped
            for line in detail.splitlines() or [""]:
                print(printable(f"  {line}"), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tuner space ... | head`: the reader is gone, nothing is wrong
        sys.stderr.close()
        return EXIT_OK
    except SystemExit:
        raise
    except BaseException as e:
        if command == "try" and getattr(e, "tuner_user_code", False):
            import traceback  # the user's function failed: its own traceback, what `try` is for

            traceback.print_exc()
            print(
                printable(f"tuner try: the trial function failed: {type(e).__name__}: {message(e)[:300]}"),
                file=sys.stderr,
            )
            return EXIT_FAILED
        path = log_bug(e, f"tuner {' '.join(sys.argv[1:] if argv is None else argv)[:2000]}")
        where = f"the traceback is in {path}" if path else "no log could be written"
        print(
            printable(f"tuner: internal error: {type(e).__name__}: {first_line(e)} (a bug in tuner; {where})"),
            file=sys.stderr,
        )
        return EXIT_FAILED
