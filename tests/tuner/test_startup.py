"""A run's start (:mod:`tuner.startup`): when the process started, and what its first line says."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT
from tuner.startup import starting_line


def test_a_processs_start_is_read_to_the_clocks_tick() -> None:
    """``process_start`` (the ``process`` timing of run.json) falls between the moment the
    child was launched and the moment it asked: /proc's boot time alone is whole seconds,
    which put it up to 1 s before the launch."""
    before = time.time()
    code = "import time; from tuner.startup import process_start; print(process_start(), time.time())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    started, asked = map(float, out.stdout.split())
    assert before - 0.05 <= started <= asked <= time.time()


def test_the_first_line_of_a_run_on_an_instance_of_its_own_names_tuner_up() -> None:
    """A run that starts Ray of its own says how later runs start sooner; one that joins an
    instance names it instead."""
    own = starting_line(None)
    assert own.startswith("loading the data, starting Ray (") and "`tuner up`" in own
    assert starting_line("127.0.0.1:6379", kept=True) == (
        "loading the data, connecting to Ray at 127.0.0.1:6379 (the instance tuner up keeps)"
    )
    assert "tuner up" not in starting_line("10.0.0.5:6379")
    assert starting_line(None, num_cpus=4) == "loading the data, starting Ray"  # asked for: no advice
