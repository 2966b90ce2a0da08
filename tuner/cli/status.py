"""The ``tuner`` command's exit statuses (``docs/usage.md``)."""

EXIT_OK = 0  # done
EXIT_FAILED = 1  # the run failed, or a bug in tuner
EXIT_INPUT = 2  # bad input: nothing started, nothing written
EXIT_DRIFT = 3  # retest --fail-on-drift flagged a drift
EXIT_INTERRUPTED = 130  # Ctrl-C
