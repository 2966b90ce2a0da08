"""Fuzzing the command line's names and places: ``--name``, a sweep's ``name:``, ``--storage``
and ``-o``. Whatever they hold, a run writes only under its storage, an export or a model only
at ``-o``, a report only in its ``-o`` folder -- or the command says why not in one line.

``run`` goes the whole way here without Ray (:func:`tests.fuzz.harness.dry_cluster`: a fake
cluster, rounds that train nothing), so the run directory is really created and written; the
run then fails for want of results (exit 1), which is what a run without results must do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import tiny_sweep
from tests.fuzz.harness import check, count, run_cli, scratch
from tests.fuzz.strategies import NASTY_STRINGS, examples
from tests.tuner.fake_run import epochs, make_run, write_export

NAMES = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(alphabet=st.sampled_from("ab./-_~ \\$*"), max_size=12),
    st.text(max_size=12),
)
PLACES = st.one_of(
    st.sampled_from(["out", "out/deeper/x", "afile", "afile/x", "/proc/x", "/proc/self/mem", "/sys/x", "/dev/x", ""]),
    st.sampled_from(["..", "../sibling", ".", "~", "~/x", "s3://", "ftp://host/x", "file:///proc/x", "a" * 300]),
    # generated places stay inside the test's folder (HOME is the test's root): a place that is
    # legal but absolute would really be written to
    NAMES.map(lambda s: s.lstrip("/~") or "x"),
)


def _root() -> Path:
    root = scratch()
    (root / "work").mkdir()
    (root / "work" / "afile").write_text("x")
    doc = tiny_sweep(**{"data.n_samples": 60, "search.num_samples": 1})
    (root / "work" / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def _outside(root: Path, before: set[str]) -> list[str]:
    """What appeared in the root's parent, beside the root (a write that escaped it)."""
    return sorted({p.name for p in root.parent.iterdir()} - before - {root.name})


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", os.environ.get("HOME", "/root"))  # each test may point HOME at its root


@pytest.mark.usefixtures("dry_cluster")
@settings(max_examples=examples(40))
@given(name=NAMES, storage=PLACES, in_file=st.booleans())
@example(name="../../x", storage="runs", in_file=False)
@example(name="/abs/path", storage="runs", in_file=True)
@example(name=".", storage="runs", in_file=False)
@example(name="a" * 300, storage="runs", in_file=True)
@example(name="ok", storage="afile", in_file=False)
@example(name="ok", storage="/proc/x", in_file=False)
def test_a_run_writes_only_under_its_storage(name: str, storage: str, in_file: bool) -> None:
    count("2 writes outside the storage", "run --name/--storage")
    root = _root()
    os.environ["HOME"] = str(root)  # restored by the fixture below
    work = root / "work"
    if in_file:
        doc = yaml.safe_load((work / "s.yaml").read_text())
        doc["name"] = name
        (work / "s.yaml").write_text(yaml.safe_dump(doc))
    args = ["run", "s.yaml", "--storage", storage, "--quiet"] + ([] if in_file else ["--name", name])
    before = {p.name for p in root.parent.iterdir()}
    o = run_cli(args, work)
    assert not _outside(root, before), o.text()
    if o.rc != 2:
        # the run directory was made under the storage: exit 1 for want of results (rounds faked)
        check(o, may_write=[os.path.relpath(os.path.abspath(os.path.join(work, storage)), work)], ok=(1,))
        assert "no trial produced a result" in o.err, o.text()
    else:
        check(o)


def _run_dir(root: Path) -> Path:
    run = make_run(root / "r", [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    write_export(run)
    return run


BASE = _run_dir(scratch("fz-base-"))


@settings(max_examples=examples(30))
@given(place=PLACES, command=st.sampled_from(["export", "train"]))
@example(place="out", command="export")
@example(place="", command="export")
@example(place="/proc/self/mem", command="train")
@example(place="afile", command="report")  # a report is slow to draw: its places are the examples
@example(place="afile/x", command="report")
@example(place="/proc/x", command="report")
@example(place="", command="report")
@example(place="out/deeper", command="report")
def test_o_writes_only_at_o(place: str, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    count("2 writes outside the storage", f"{command} -o")
    from tuner import final
    from tuner.errors import InputError

    def no_training(*a: object, **k: object) -> None:
        raise InputError("fuzz: training not wanted here")

    monkeypatch.setattr(final, "Trainer", no_training)
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", lambda self, *a, **k: None)
    root = _root()
    monkeypatch.setenv("HOME", str(root))
    work = root / "work"
    import shutil

    shutil.copytree(BASE, work / "run")
    source = {"export": "run", "report": "run", "train": "run/best.yaml"}[command]
    before = {p.name for p in root.parent.iterdir()}
    o = run_cli([command, source, "-o", place], work)
    assert not _outside(root, before), o.text()
    target = os.path.relpath(os.path.abspath(os.path.join(work, os.path.expanduser(place))), work) if place else "."
    check(o, may_write=[target])
