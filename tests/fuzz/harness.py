"""What every fuzz test checks: one ``tuner`` command, run in this process on a hostile input,
exits 0 or 2 (or 1 where a command legitimately fails), prints no traceback, writes nothing
when it refuses the input, and never writes outside the places it may write to.

Ray is never started here. Commands that would start it (``run``, ``retest``, ``resume``)
reach :func:`tuner.ray.cluster.connect` only once every check before it passed; the fuzz
tests replace it with :func:`no_ray`, which refuses with :data:`RAY_REACHED` (an
:class:`InputError`, so the command exits 2 and nothing has been written, as the contract
says of anything that happens before Ray). ``dry_cluster`` goes one step further for the
tests of where a run writes: a fake two-CPU cluster and rounds that train nothing, so the run
directory is created, written and read back without Ray.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tuner.cli import main
from tuner.errors import InputError

RAY_REACHED = "fuzz: every check before Ray passed"
# The counts a fuzz session reports (tests/fuzz/conftest.py prints them at the end).
COUNTS: dict[str, int] = {"inputs": 0, "commands": 0}
CLASSES: dict[str, set[str]] = {}


def no_ray(*args: Any, **kwargs: Any) -> dict[str, float]:
    """Stands in for ``cluster.connect``: the input got as far as starting Ray."""
    raise InputError(RAY_REACHED)


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command stops where it would start Ray (see :func:`no_ray`)."""
    from tuner.ray import cluster

    monkeypatch.setattr(cluster, "connect", no_ray)


@pytest.fixture
def dry_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake local cluster of two CPUs whose rounds train nothing: a run creates, writes and
    reads its run directory (and fails for want of results) without Ray."""
    from tuner import rounds
    from tuner.ray import cluster, nodes

    monkeypatch.setattr(cluster, "connect", lambda *a, **k: {"CPU": 2.0, "GPU": 0.0})
    monkeypatch.setattr(nodes, "cluster_nodes", lambda: [{"node_id": "n", "address": "x", "resources": {"CPU": 2}}])
    monkeypatch.setattr(nodes, "autoscaler_node_types", lambda: [])
    monkeypatch.setattr(rounds, "run_rounds", lambda *a, **k: None)


def count(cls: str, what: str = "") -> None:
    """Record one input of the issue's class ``cls`` (for the session's summary)."""
    COUNTS["inputs"] += 1
    CLASSES.setdefault(cls, set()).add(what)


_SCRATCH = Path(tempfile.mkdtemp(prefix="tuner-fuzz-"))  # this session's alone: a write beside a root shows


def scratch(prefix: str = "fz-") -> Path:
    """A fresh folder for one generated input (hypothesis runs many examples in one test),
    in a folder of this session's own."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH))


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: relative path -> (size, mtime in ns)."""
    out: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return out


def changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Paths created, modified or removed between two :func:`tree` snapshots."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@dataclass
class Outcome:
    """One command's exit status, console output and what it changed under the root."""

    argv: list[str]
    rc: int
    out: str
    err: str
    changes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (
            f"tuner {' '.join(self.argv)[:400]}\nexit {self.rc}\nstdout: {self.out[-800:]}\nstderr: {self.err[-1500:]}"
        )


def run_cli(argv: Sequence[str], root: Path) -> Outcome:
    """``tuner ARGV`` in this process, cwd ``root``, with its console output captured."""
    COUNTS["commands"] += 1
    out, err = io.StringIO(), io.StringIO()
    before = tree(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    finally:
        os.chdir(cwd)
    return Outcome(list(map(str, argv)), rc, out.getvalue(), err.getvalue(), changed(before, tree(root)))


def check(
    o: Outcome,
    may_write: Sequence[str] = (),
    ok: Sequence[int] = (0, 2),
) -> None:
    """The contract for a hostile input: an allowed exit status, no traceback and no bug line;
    on exit 2 one line a problem and nothing written; otherwise writes only under
    ``may_write`` (paths relative to the root)."""
    assert o.rc in ok, o.text()
    console = o.out + o.err
    assert "Traceback (most recent call last)" not in console, o.text()
    assert "internal error" not in o.err, o.text()
    if o.rc == 2:
        lines = o.err.strip().splitlines()
        assert lines and all(line.strip() for line in lines), o.text()
        assert len(lines) <= 60, o.text()  # every problem at once, but never a flood
        assert not o.changes, f"exit 2 but wrote {o.changes[:5]}\n{o.text()}"
    else:
        allowed = [os.path.normpath(p) for p in may_write]
        if "." in allowed:  # the root itself is the target (report -o .)
            return
        # under an allowed place, or one of the folders made on the way to it
        outside = [
            c
            for c in o.changes
            if not any(c == a or c.startswith(a + os.sep) or a.startswith(c + os.sep) for a in allowed)
        ]
        assert not outside, f"wrote outside {allowed}: {outside[:5]}\n{o.text()}"


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Library warnings (numpy overflow on a hostile value) are not what is tested here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def warm_up() -> None:
    """Import what the commands import (Ray's search classes, torch) once, before any example
    is timed."""
    import tuner.final
    import tuner.ray.search
    import tuner.report
    import tuner.runner  # noqa: F401


warm_up()


@pytest.fixture
def cheap_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures are computed but not rendered: drawing a PNG is what makes a report slow, and
    a hostile value breaks a report while its figure is built, not while it is saved."""
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: None)
