"""The ``tuner`` command line (contract in ``docs/design.md``): :func:`main` runs a command
of :mod:`.sweep` (a sweep and its run), :mod:`.results` (what a run produced) or
:mod:`.instance` (``up``/``down``), parsed by :mod:`.parser`, and turns what it raises into
an exit status (:mod:`.status`) and one line.

Exit status: 0 done; 2 bad input (usage, sweep, export or model file, data), one line a
problem naming the file, the key path and the rule, nothing started and nothing written;
1 the run itself failed (one readable block, and where the full logs are), or a bug (one
line naming the log file that holds its traceback), or its output could not be written (a
full disk, a closed stdout: one line); 3 ``retest --fail-on-drift`` flagged a drift; 130
interrupted. With ``--json``, stdout holds one JSON object however the command ends.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from typing import Any

from tuner import signals, streams
from tuner.cli.instance import cmd_down, cmd_up
from tuner.cli.parser import build_parser
from tuner.cli.results import cmd_evaluate, cmd_export, cmd_report, cmd_retest, cmd_train
from tuner.cli.status import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK
from tuner.cli.sweep import cmd_resume, cmd_run, cmd_space, cmd_try, cmd_validate, outcome_json
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
JSON_COMMANDS = ("run", "resume")  # those that take --json

# A failure of the machine, not of tuner's: said in one line, not logged as a bug.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tuner`` command; returns the exit status (the command itself is
    :func:`tuner.__main__.entry`, which also ends the process quickly).

    A command's output (stdout) that could not be written, other than to a reader gone away
    (``| head``), ends it with one line and exit 1 (:func:`tuner.streams.output_error`)."""
    if sys.stdout is None or sys.stderr is None:  # closed at the start (`>&-`): written to, it fails as such
        streams.guard()
    code = _main(argv)
    error = streams.output_error()
    if error is None:
        return code
    print(printable(f"tuner: cannot write the output: {error.strerror or error}"), file=sys.stderr)
    return EXIT_FAILED if code == EXIT_OK else code


def _main(argv: Sequence[str] | None) -> int:
    command = None
    args = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        with signals.as_interrupt():  # SIGTERM, SIGHUP end every command as Ctrl-C does (exit 130)
            return COMMANDS[args.command](args)
    except InputError as e:
        for line in e.problems:
            print(printable(line), file=sys.stderr)
        _outcome(args, argv, e, "bad_input", problems=e.problems)
        return EXIT_INPUT
    except RunError as e:
        print(printable(f"tuner: {e}"), file=sys.stderr)
        for detail in e.details:  # a traceback's frames keep their lines; each line is escaped
            for line in detail.splitlines() or [""]:
                print(printable(f"  {line}"), file=sys.stderr)
        _outcome(args, argv, e, "failed", error=str(e), errors=e.details)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        print("tuner: interrupted", file=sys.stderr)
        _outcome(args, argv, e, "interrupted")
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
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:  # a full disk: the machine's, not a bug
            where = f": {e.filename}" if e.filename else ""
            line = f"{e.strerror or first_line(e)}{where}"
        else:
            path = log_bug(e, f"tuner {' '.join(sys.argv[1:] if argv is None else argv)[:2000]}")
            where = f"the traceback is in {path}" if path else "no log could be written"
            line = f"internal error: {type(e).__name__}: {first_line(e)} (a bug in tuner; {where})"
        print(printable(f"tuner: {line}"), file=sys.stderr)
        _outcome(args, argv, e, "failed", error=line, errors=[])
        return EXIT_FAILED


def _outcome(
    args: argparse.Namespace | None, argv: Sequence[str] | None, raised: BaseException, status: str, **fields: Any
) -> None:
    """With ``--json``, how a command ended other than done, as one JSON object on stdout
    (:func:`tuner.cli.sweep.outcome_json`; the lines for a person went to stderr)."""
    if args is not None:
        wanted = bool(getattr(args, "json", False))
    else:  # a usage error: the command line as given
        tokens = list(sys.argv[1:] if argv is None else argv)
        wanted = bool(tokens) and tokens[0] in JSON_COMMANDS and "--json" in tokens[1:]
    if not wanted:
        return
    run_dir = getattr(raised, "tuner_run_dir", None) or getattr(args, "run_dir", None)
    print(outcome_json(status, run_dir, **fields), flush=True)
