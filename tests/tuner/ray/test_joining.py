"""Which cluster a command joins (:mod:`tuner.ray.joining`): a cluster that refuses this
driver's token is said at once, in one line (a cluster that is not there:
``test_stale_cluster.py``; a Ray Client address: ``test_cluster.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.cluster import ROOT


@pytest.mark.usefixtures("ray_session")
def test_a_refused_token_is_one_line_at_once() -> None:
    """Ray's own start retries a refused token once a second for ~20 s; the GCS is asked
    first, in a driver holding another token: one line (no C++ log on stderr), exit 1."""
    import ray

    gcs = ray._private.worker._global_node.gcs_address
    code = (
        "import sys; from tuner.errors import RunError; from tuner.ray import joining\n"
        "try:\n    joining.token_accepted(sys.argv[1], sys.argv[1])\n"
        "except RunError as e:\n    print(e, file=sys.stderr); sys.exit(1)"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, gcs], env=env, cwd=ROOT, capture_output=True, text=True)
    assert time.monotonic() - started < 15, "Ray's retries, not the GCS's answer"
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot join the Ray cluster at {gcs}: AuthenticationError"), lines
    # the session's own token is accepted: nothing raised, nothing printed
    ok = subprocess.run([sys.executable, "-c", code, gcs], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr
