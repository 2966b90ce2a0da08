"""Fuzzing the sweep file: ``validate``, ``space`` and ``run`` (up to where Ray would start)
on valid sweeps mutated at random, damaged bytes, and each class of issue 10 written out."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import tiny_sweep
from tests.fuzz.harness import RAY_REACHED, check, count, run_cli, scratch
from tests.fuzz.strategies import damaged_bytes, examples, mutated

pytestmark = pytest.mark.usefixtures("without_ray")

BASE = tiny_sweep(**{"data.n_samples": 60, "search.num_samples": 2})


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:  # a value PyYAML cannot write (it writes every plain value)
        return repr(doc)


def _commands(path: Path, root: Path) -> None:
    """validate, space and run on one sweep file: 0 or 2, one line a problem, nothing written
    on 2; ``run`` stops where Ray would start and never creates its storage."""
    v = run_cli(["validate", path.name], root)
    check(v)
    s = run_cli(["space", path.name, "-n", "3"], root)
    check(s)
    if s.rc == 0:
        assert len(s.out.strip().splitlines()) <= 3, s.text()
    r = run_cli(["run", path.name, "--storage", "runs", "--quiet"], root)
    check(r)
    assert r.rc == 2 and not (root / "runs").exists(), r.text()
    if v.rc == 0:  # what validate accepts, run accepts up to Ray (the data loads)
        assert RAY_REACHED in r.err or "data" in r.err, r.text()


@settings(max_examples=examples(60))
@given(doc=mutated(BASE, max_mutations=3))
def test_mutated_sweeps(doc: dict[str, Any]) -> None:
    count("6 values that cannot run pass validate", "mutated sweep")
    root = scratch()
    (root / "s.yaml").write_text(_dump(doc))
    _commands(root / "s.yaml", root)


@settings(max_examples=examples(25))
@given(data=damaged_bytes(yaml.safe_dump(BASE, sort_keys=False).encode()))
def test_damaged_sweep_bytes(data: bytes) -> None:
    count("5 tracebacks instead of one line", "damaged sweep bytes")
    root = scratch()
    (root / "s.yaml").write_bytes(data)
    _commands(root / "s.yaml", root)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for i in range(levels):
        name = f"l{i}"
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]\n"
        prev = name
    return text


def _with_range(key: str, value: str) -> str:
    return yaml.safe_dump(BASE, sort_keys=False).replace("max: 0.5", f"max: {value}") if key == "max" else ""


CLASS_INPUTS = {
    # 4: denial of service
    "alias bomb": ("4 denial of service", _alias_bomb()),
    "alias bomb in a value": ("4 denial of service", "name: x\ndata: " + _alias_bomb(6, 12).replace("\n", "\n  ")),
    "recursive alias": ("4 denial of service", "a: &a [*a]\n"),
    "deep nesting": ("4 denial of service", "[" * 50_000),
    # 6: values that cannot run
    "duplicate key": ("6 values that cannot run pass validate", yaml.safe_dump(BASE) + "metric: val_loss\n"),
    "inf in a range": ("6 values that cannot run pass validate", _with_range("max", ".inf")),
    "nan in a range": ("6 values that cannot run pass validate", _with_range("max", ".nan")),
    "1e999 in a range": ("6 values that cannot run pass validate", _with_range("max", "1e999")),
    # 5: huge values, odd types
    "a list": ("5 tracebacks instead of one line", "- 1\n- 2\n"),
    "a string": ("5 tracebacks instead of one line", "just text\n"),
    "empty": ("5 tracebacks instead of one line", ""),
    "tagged python object": ("1 code execution", "!!python/object/apply:os.system ['echo pwned']\n"),
}


@pytest.mark.parametrize("label", list(CLASS_INPUTS))
def test_each_class_of_sweep_input(label: str) -> None:
    cls, text = CLASS_INPUTS[label]
    count(cls, label)
    root = scratch()
    (root / "s.yaml").write_text(text)
    started = time.monotonic()
    _commands(root / "s.yaml", root)
    assert time.monotonic() - started < 20, f"{label}: took {time.monotonic() - started:.0f}s"


HUGE_VALUES = {
    "data.seed": 1e30,
    "data.n_samples": 10**12,
    "model.hidden": [10**12],
    "train.epochs": 10**9,
    "train.batch_size": 2**63,
    "train.lr": float("inf"),
    "train.weight_decay": float("nan"),
    "train.momentum": -float("inf"),
    "scheduler.reduction_factor": float("inf"),
    "search.refine": {"margin": float("nan")},
    "resources.cpu": float("nan"),
    "resources.gpu": 1e300,
    "search.num_samples": 10**20,
    "name": "a" * 300,
}


@pytest.mark.parametrize("key", list(HUGE_VALUES))
def test_huge_and_non_finite_values_are_refused_by_validate(key: str) -> None:
    count("6 values that cannot run pass validate", key)
    root = scratch()
    doc = tiny_sweep(**{key: HUGE_VALUES[key]})
    (root / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    o = run_cli(["validate", "s.yaml"], root)
    check(o)
    assert o.rc == 2 and key.split(".")[-1] in o.err, o.text()


@settings(max_examples=examples(20))
@given(
    lo=st.floats(allow_nan=True, allow_infinity=True),
    hi=st.floats(allow_nan=True, allow_infinity=True),
    dist=st.sampled_from(["uniform", "log_uniform", "one_minus_log_uniform", "int_uniform", "int_log_uniform"]),
)
@example(lo=1e-3, hi=math.inf, dist="log_uniform")
@example(lo=-math.inf, hi=1.0, dist="uniform")
def test_any_range_is_refused_or_sampled(lo: float, hi: float, dist: str) -> None:
    count("6 values that cannot run pass validate", "a range")
    root = scratch()
    doc = tiny_sweep(**{"search.parameters": {"train.lr": {"distribution": dist, "min": lo, "max": hi}}})
    (root / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    o = run_cli(["space", "s.yaml", "-n", "5"], root)
    check(o)
    if o.rc == 0:
        for line in o.out.splitlines():
            assert "NaN" not in line and "Infinity" not in line, o.text()


def test_a_50_mb_sweep_file_is_refused_at_once() -> None:
    count("4 denial of service", "50 MB file")
    root = scratch()
    with open(root / "s.yaml", "wb") as f:
        f.write(b"name: x\ndata: {name: digits}\nmodel: {hidden: [")
        f.write(b"1, " * (50 * 1024 * 1024 // 3))
        f.write(b"1]}\n")
    started = time.monotonic()
    o = run_cli(["validate", "s.yaml"], root)
    check(o)
    assert o.rc == 2 and "larger than" in o.err and time.monotonic() - started < 5, o.text()
