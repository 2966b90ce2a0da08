"""The fuzz suite's settings and its summary line.

Examples are derandomized by default (the same inputs every run: CI never fails on a draw it
cannot repeat); ``HYPOTHESIS_PROFILE=deep`` draws ten times as many at random, for a longer
hunt by hand. The session ends with the counts the issue asks for: inputs tried, commands
run, and the issue's classes the inputs covered.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.fuzz.harness import CLASSES, COUNTS, cheap_figures, dry_cluster, without_ray  # noqa: F401  (fixtures)

_COMMON: dict[str, Any] = {
    # An example slower than this is a hang, not noise (a shared machine's first import of Ray
    # alone can take 15 s); the class tests time what must be fast themselves.
    "deadline": 30_000,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    "database": None,
    "print_blob": True,
}
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))  # no .hypothesis/ left in the repository
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COUNTS["commands"]:
        terminalreporter.write_line(
            f"fuzz: {COUNTS['inputs']} hostile inputs, {COUNTS['commands']} commands run; issue classes covered: "
            + ", ".join(f"{k} ({len(v)} kinds)" for k, v in sorted(CLASSES.items()))
        )
