"""Fuzzing the export file: ``retest`` and ``run`` (up to where Ray would start) and
``train`` (up to where it would train) on exports mutated at random, damaged bytes, and the
hostile exports of issue 10: an export is validated as rigorously as a sweep, before Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import RAY_REACHED, check, count, run_cli, scratch
from tests.fuzz.strategies import damaged_bytes, examples, mutated
from tests.tuner.fake_run import epochs, make_run, write_export
from tuner.errors import InputError

TRAIN_REACHED = "fuzz: every check before training passed"


@pytest.fixture(autouse=True)
def _no_training(monkeypatch: pytest.MonkeyPatch, without_ray: None) -> None:
    """``train`` stops where it would start training (what is fuzzed is what it reads)."""
    from tuner import final

    def trainer(*args: Any, **kwargs: Any) -> None:
        raise InputError(TRAIN_REACHED)

    monkeypatch.setattr(final, "Trainer", trainer)


def _base() -> dict[str, Any]:
    root = scratch("fz-base-")
    run = make_run(
        root,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.01, "train.momentum": 0.8}, epochs(0.4, 0.5, 0.6)),
        ],
        overrides={"data.n_samples": 60},
    )
    return yaml.safe_load(write_export(run).read_text())  # type: ignore[no-any-return]


BASE = _base()


def _commands(root: Path, name: str) -> None:
    for argv in (
        ["retest", name, "--seeds", "2"],
        ["run", name, "--storage", "runs", "--quiet"],
        ["train", name, "-o", "model.pt"],
    ):
        o = run_cli(argv, root)
        check(o)
        # Every command stops at one line: a problem, or where Ray or training would start.
        assert o.rc == 2, o.text()
    assert not (root / "runs").exists() and not (root / "model.pt").exists()
    history = root / (Path(name).stem + ".retest.jsonl")
    assert not history.exists()


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False)
    except yaml.YAMLError:
        return repr(doc)


@settings(max_examples=examples(30))
@given(doc=mutated(BASE, max_mutations=3))
def test_mutated_exports(doc: dict[str, Any]) -> None:
    count("8 retest trusts the export", "mutated export")
    root = scratch()
    (root / "best.yaml").write_text(_dump(doc))
    _commands(root, "best.yaml")


@settings(max_examples=examples(15))
@given(data=damaged_bytes(json.dumps(BASE).encode()))
def test_damaged_json_exports(data: bytes) -> None:
    count("8 retest trusts the export", "damaged JSON export")
    root = scratch()
    (root / "best.json").write_bytes(data)
    _commands(root, "best.json")


@settings(max_examples=examples(15))
@given(entries=st.lists(st.one_of(st.dictionaries(st.text(max_size=20), st.integers()), st.integers()), max_size=4))
def test_top_entries_of_any_shape(entries: list[Any]) -> None:
    count("8 retest trusts the export", "malformed top entries")
    root = scratch()
    (root / "best.yaml").write_text(_dump({**BASE, "top": [{"params": e, "score": 0.5} for e in entries]}))
    _commands(root, "best.yaml")


def _set(path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(BASE))
    node = doc
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[parts[-1]] = value
    return doc


CASES = {
    "unknown parameter path": _set("top.0.params", {"train.bogus": 0.1}),
    "a parameter path into data": _set("top.0.params", {"data.path": "/etc/passwd"}),
    "a parameter path at name": _set("top.0.params", {"name": "../../x"}),
    "a parameter path too deep": _set("top.0.params", {"train.lr.x": 1}),
    "a parameter key that is a number": _set("top.0.params", {1: 2}),
    "a parameter value of the wrong type": _set("top.0.params", {"train.lr": "abc"}),
    "a non-finite parameter value": _set("top.0.params", {"train.lr": float("inf")}),
    "mode sideways": _set("mode", "sideways"),
    "a numeric metric": _set("metric", 5),
    "top not a list": _set("top", "x"),
    "a top entry that is a list": _set("top", [[1, 2]]),
    "a top entry without params": _set("top", [{"score": 1}]),
    "config naming code": _set("config.model", {"name": "os:system"}),
    "config not a mapping": _set("config", [1]),
    "config name ../../x": _set("config.name", "../../x"),
    "score NaN": _set("score", float("nan")),
    "metric/mode not the config's": _set("mode", "min"),
}


@pytest.mark.parametrize("label", list(CASES))
def test_each_class_of_hostile_export(label: str) -> None:
    count("8 retest trusts the export", label)
    root = scratch()
    (root / "best.yaml").write_text(_dump(CASES[label]))
    _commands(root, "best.yaml")
    o = run_cli(["retest", "best.yaml"], root)
    # an export is code the user runs (docs/security.md): naming code in it is allowed, and a
    # NaN score is only what the run measured; every other case must stop before Ray
    if label not in ("score NaN", "config naming code"):
        assert RAY_REACHED not in o.err, f"{label}: reached Ray\n{o.text()}"


@pytest.mark.parametrize(
    "flags",
    [
        ["--tolerance", "nan"],
        ["--tolerance", "inf"],
        ["--tolerance", "-1"],
        ["--seeds", "1"],
        ["--seeds", "0"],
        ["--seeds", "1e9"],
        ["--top-k", "0"],
        ["--every", "0s"],
        ["--every", "1e400d"],
        ["--data", "n_samples=1e12"],
        ["--data", "=x"],
        ["--data", "path=../../etc/passwd"],
        ["--address", "not an address"],
    ],
)
def test_retest_flags(flags: list[str]) -> None:
    count("8 retest trusts the export", " ".join(flags))
    root = scratch()
    (root / "best.yaml").write_text(_dump(BASE))
    o = run_cli(["retest", "best.yaml", *flags], root)
    check(o)
    assert o.rc == 2 and RAY_REACHED not in o.err, o.text()
