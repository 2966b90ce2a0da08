"""The export file's schema: every section checked (types, ranges, finite numbers, known keys,
names), every problem reported, and ``tuner export`` refusing what the reader would refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import tuner.export_file as export
from tests.tuner.fake_run import epochs, make_run, retest_section
from tuner.errors import InputError


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    run = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.2, "train.momentum": 0.8}, epochs(0.4)),
        ],
    )
    return yaml.safe_load(export.export_run(run).read_text())  # type: ignore[no-any-return]


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = doc
    parts = path.split("/")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
    return doc


CASES = [
    ("score", float("nan"), "score: nan must be a finite number"),
    ("top/0/score", float("inf"), "top[0].score: inf must be a finite number"),
    ("top/0/metrics/val_loss", float("-inf"), "top[0].metrics.val_loss: -inf must be a finite number"),
    ("provenance/x", float("nan"), "provenance.x: nan must be a finite number"),
    ("evil", 1, "evil: is not a key of an export"),
    ("top/0/bogus", 1, "top[0].bogus: is not a key of a top entry"),
    ("params/train.lr", -1, "params: train.lr: -1"),
    ("top", [], "top: [] must list 1 to 10000"),
    ("top/0/round", -7, "top[0].round: -7 must be in [0, 10000)"),
    ("top/0/epochs", True, "top[0].epochs: True must be an integer"),
    ("top/0/trial", "../../etc/passwd", "top[0].trial: '../../etc/passwd' must be a trial's name"),
    ("top/0/status", "evil", "top[0].status: 'evil' is not one of '', finished, stopped"),
    ("top/0/error", 5, "top[0].error: 5 must be a string, not int"),
    ("retest", {"results": "x", "seeds": -1}, "retest.seeds: -1 must be a list of seeds"),
    ("retest", {"results": [{"params": {}, "val": {"mean": 0.5, "std": -1}}]}, "retest.results[0].val.std: -1"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[0] + "=" + repr(c[1]) for c in CASES])
def test_every_section_is_checked(good: dict[str, Any], tmp_path: Path, path: str, value: Any, expected: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(_set(good, path, value), sort_keys=False))
    with pytest.raises(InputError) as e:
        export.load(f, check_code=False)
    assert any(expected in p and p.startswith(f"{f}: ") for p in e.value.problems), e.value.problems


def test_every_problem_is_reported_and_duplicates_are_refused(good: dict[str, Any], tmp_path: Path) -> None:
    good["top"] = [good["top"][0]] * 1000
    good["evil"] = 1
    good["score"] = float("inf")
    f = tmp_path / "x.json"
    f.write_text(json.dumps(good))  # Infinity in JSON
    with pytest.raises(InputError) as e:
        export.load(f, check_code=False)
    text = "\n".join(e.value.problems)
    assert "evil: is not a key" in text and "score: inf" in text and "top[1]: repeats top[0]" in text
    assert len(e.value.problems) <= 100


def test_params_are_checked_when_top_is_not_empty(good: dict[str, Any], tmp_path: Path) -> None:
    good["params"]["train.bogus"] = 1
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(good, sort_keys=False))
    with pytest.raises(InputError, match=r"params.train.bogus: not a searchable key"):
        export.load(f, check_code=False)


def test_a_good_export_and_a_retested_one_load(good: dict[str, Any], tmp_path: Path) -> None:
    good["retest"] = retest_section([t["trial"] for t in good["top"]], [t["params"] for t in good["top"]])
    good["top"][0]["retest"] = {"val": {"mean": None, "std": None, "ci95": None}, "test": {}}  # all diverged
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(good, sort_keys=False))
    loaded, _ = export.load(f, check_code=False)
    assert loaded.retest is not None and len(loaded.top) == 2


def _run(tmp_path: Path, params: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    return make_run(tmp_path, [(params, history), ({"train.lr": 0.2, "train.momentum": 0.8}, epochs(0.4))])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"train.lr": -5, "train.momentum": 7}, "train.lr: -5 must be in [0.001, 0.5]"),
        ({"train.lr": 0.1, "train.momentum": 0.9, "../../evil": 1}, "'../../evil' is not a searched parameter"),
        ({"train.lr": 0.1, "train.momentum": "x"}, "train.momentum: 'x' must be a finite number"),
    ],
)
def test_export_refuses_a_best_trial_that_is_not_valid_for_its_sweep(
    tmp_path: Path, params: dict[str, Any], expected: str
) -> None:
    run = _run(tmp_path, params, epochs(0.5, 0.9))
    with pytest.raises(InputError) as e:
        export.export_run(run)
    assert len(e.value.problems) == 1 and expected in e.value.problems[0] and "run_trial_abcde_00000" in str(e.value)
    assert not (run / "best.yaml").exists()


def test_export_leaves_out_a_lesser_invalid_trial_with_a_warning(tmp_path: Path) -> None:
    run = _run(tmp_path, {"train.lr": 0.1, "train.momentum": 0.9, "os:system": "x"}, epochs(0.1))
    warnings: list[str] = []
    built = export.build(export.load_run(run), warn=warnings.append)
    assert [t.trial for t in built.top] == ["abcde_00001"]
    assert len(warnings) == 1 and "'os:system' is not a searched parameter" in warnings[0]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_non_finite_score_never_reaches_an_export(tmp_path: Path, fmt: str) -> None:
    run = _run(tmp_path, {"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, float("inf")))
    path = export.export_run(run, fmt=fmt)
    text = path.read_text()
    assert ".inf" not in text and "Infinity" not in text
    assert [t.trial for t in export.read(path).top] == ["abcde_00001"]
    only = make_run(tmp_path / "o", [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(float("nan")))])
    with pytest.raises(InputError, match="no trial has a finite val_acc; nothing to export"):
        export.export_run(only)


def test_the_writer_refuses_what_the_reader_refuses(good: dict[str, Any], tmp_path: Path) -> None:
    loaded = export.Export.from_dict(good, "x")
    loaded.top[0].trial = "../../x"
    with pytest.raises(InputError, match=r"top\[0\].trial"):
        export.write(loaded, tmp_path / "w.yaml")
    assert not (tmp_path / "w.yaml").exists()
