"""Fuzzing run directories: ``export``, ``report`` and ``resume`` (up to where Ray would
start) on a run directory whose files -- run.json, sweep.yaml, params.json, result.json,
error.txt, best.yaml, best.retest.jsonl, asha-rungs.json -- were damaged or rewritten with
hostile values. A run directory is read, never trusted: one line and exit 2, or a result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import check, count, run_cli, scratch
from tests.fuzz.strategies import damaged_bytes, examples, mutated, values
from tests.tuner.fake_run import epochs, make_run, retest_section, write_export

pytestmark = pytest.mark.usefixtures("without_ray", "cheap_figures")


def _base() -> Path:
    root = scratch("fz-base-")
    run = make_run(
        root,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.01, "train.momentum": 0.8}, epochs(0.4, 0.5)),
            ({"train.lr": 0.2, "train.momentum": 0.7}, epochs(0.3, diverged_at=2)),
        ],
        error_for={2},
    )
    trials = sorted(p.name for p in (run / "round-0").iterdir())
    write_export(run, retest_section(["abcde_00000", "abcde_00001"], [{"train.lr": 0.1}, {"train.lr": 0.01}]))
    (run / "best.retest.jsonl").write_text(
        json.dumps(retest_section(["abcde_00000"], [{"train.lr": 0.1, "train.momentum": 0.9}])) + "\n"
    )
    (run / "round-0" / "asha-rungs.json").write_text(
        json.dumps({"brackets": [[{"milestone": 1, "recorded": {"abcde_00000": 0.5}}]], "trials": trials})
    )
    return run


BASE = _base()
FILES = {
    "run.json": "run.json",
    "sweep.yaml": "sweep.yaml",
    "best.yaml": "best.yaml",
    "best.retest.jsonl": "best.retest.jsonl",
    "asha-rungs.json": "round-0/asha-rungs.json",
    "params.json": "round-0/{trial}/params.json",
    "result.json": "round-0/{trial}/result.json",
    "error.txt": "round-0/{trial}/error.txt",
}


def _copy() -> tuple[Path, Path]:
    root = scratch()
    run = root / "run"
    shutil.copytree(BASE, run)
    return root, run


def _file(run: Path, key: str) -> Path:
    trial = sorted((run / "round-0").glob("run_trial_*"))[-1 if key == "error.txt" else 0].name
    return run / FILES[key].format(trial=trial)


def _load(path: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".yaml":
        return yaml.safe_load(text)
    if path.suffix == ".jsonl" or path.name == "result.json":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text) if path.suffix == ".json" else text


def _save(path: Path, doc: Any) -> None:
    if path.suffix == ".yaml":
        try:
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        except yaml.YAMLError:
            path.write_text(repr(doc))
    elif path.suffix == ".jsonl" or path.name == "result.json":
        rows = doc if isinstance(doc, list) else [doc]
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(doc, default=str) if path.suffix == ".json" else str(doc))


def _commands(root: Path, run: Path, report: bool = True, resume: bool = False) -> None:
    """export (-o a file of the root), report (-o a folder of the root), resume (up to Ray)."""
    e = run_cli(["export", "run", "-o", "exported.yaml"], root)
    check(e, may_write=["exported.yaml"])
    if report:
        r = run_cli(["report", "run", "-o", "report"], root)
        check(r, may_write=["report"])
    if resume:
        meta = run / "run.json"
        try:
            doc = json.loads(meta.read_text())
            if isinstance(doc, dict) and doc.get("status") == "done":
                doc["status"] = "interrupted"
                meta.write_text(json.dumps(doc))
        except (OSError, ValueError):
            pass
        o = run_cli(["resume", "run"], root)
        check(o)
        assert o.rc == 2, o.text()  # one line, or RAY_REACHED: every check passed, nothing written


def _mutate(path: Path, data: st.DataObject) -> None:
    doc = _load(path)
    if isinstance(doc, (dict, list)) and doc:
        _save(path, data.draw(mutated(doc, max_mutations=2)))
    else:
        _save(path, data.draw(values))


@settings(max_examples=examples(40))
@given(key=st.sampled_from(list(FILES)), data=st.data())
def test_mutated_run_directory_files(key: str, data: st.DataObject) -> None:
    count("5 tracebacks instead of one line", f"run directory {key} mutated")
    root, run = _copy()
    _mutate(_file(run, key), data)
    _commands(root, run, report=False)


@settings(max_examples=examples(5))
@given(key=st.sampled_from(list(FILES)), data=st.data())
def test_mutated_run_directory_files_in_a_report(key: str, data: st.DataObject) -> None:
    count("5 tracebacks instead of one line", f"run directory {key} mutated, reported")
    root, run = _copy()
    _mutate(_file(run, key), data)
    _commands(root, run)


@settings(max_examples=examples(25))
@given(key=st.sampled_from(list(FILES)), data=st.data())
def test_damaged_run_directory_bytes(key: str, data: st.DataObject) -> None:
    count("5 tracebacks instead of one line", f"run directory {key} damaged")
    root, run = _copy()
    path = _file(run, key)
    path.write_bytes(data.draw(damaged_bytes(path.read_bytes())))
    _commands(root, run, report=False, resume=True)


def _sweep(run: Path, **changes: Any) -> None:
    doc = yaml.safe_load((run / "sweep.yaml").read_text())
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    (run / "sweep.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _trial(run: Path, name: str) -> Path:
    return _file(run, name)


CASES = {
    "undecodable bytes in result.json": lambda run: _trial(run, "result.json").write_bytes(
        b'\xff\xfe{"epoch": 1, "val_acc": "\xff"}\n\x80\x81\n'
    ),
    "undecodable run.json": lambda run: (run / "run.json").write_bytes(b'{"name": "\xff\xfe"}'),
    "undecodable sweep.yaml": lambda run: (run / "sweep.yaml").write_bytes(b"\xff\xfe\x00name: x"),
    "wrong types in result.json": lambda run: _trial(run, "result.json").write_text(
        '{"epoch": "1", "val_acc": [1]}\n{"epoch": 1, "val_acc": {"a": 1}}\n{"epoch": 1e300, "val_acc": 1e400}\n'
        '[1, 2]\n"text"\n{"epoch": true, "val_acc": true}\n{"epoch": 2, "val_acc": null, "diverged": "yes"}\n'
    ),
    "params.json a list": lambda run: _trial(run, "params.json").write_text("[1, 2, 3]"),
    "params.json values of the wrong type": lambda run: _trial(run, "params.json").write_text(
        '{"train.lr": {"a": 1}, "train.momentum": [1, 2]}'
    ),
    "params.json a non-finite value": lambda run: _trial(run, "params.json").write_text(
        '{"train.lr": NaN, "train.momentum": Infinity}'
    ),
    "garbage best.yaml": lambda run: (run / "best.yaml").write_bytes(b"\x00\xff: [\n}}"),
    "best.yaml a list": lambda run: (run / "best.yaml").write_text("- 1\n- 2\n"),
    "sweep.yaml without metric": lambda run: _sweep(run, metric=None),
    "sweep.yaml with a numeric metric": lambda run: _sweep(run, metric=3),
    "sweep.yaml naming code": lambda run: _sweep(run, model={"name": "os:system"}),
    "sweep.yaml name ../../x": lambda run: _sweep(run, name="../../x"),
    "run.json rounds escaping the folder": lambda run: (run / "run.json").write_text(
        json.dumps({"name": "x", "status": "done", "rounds": [{"index": 0, "dir": "../../etc"}]})
    ),
    "run.json round parameters hostile": lambda run: (run / "run.json").write_text(
        json.dumps(
            {
                "name": "x",
                "status": "done",
                "rounds": [
                    {"index": 0, "dir": "round-0", "parameters": {"train.lr": {"distribution": "x", "min": "a"}}}
                ],
            }
        )
    ),
    "run.json round parameters not a mapping": lambda run: (run / "run.json").write_text(
        json.dumps({"name": "x", "status": "done", "rounds": [{"index": 0, "dir": "round-0", "parameters": [1]}]})
    ),
    "asha-rungs.json hostile": lambda run: (run / "round-0" / "asha-rungs.json").write_text(
        '{"brackets": [[{"milestone": "a", "recorded": [1]}]], "trials": 5}'
    ),
    "retest history hostile": lambda run: (run / "best.retest.jsonl").write_bytes(
        b'\xff\n[1]\n{"results": 5}\n{"results": [{"val": 3}]}\n{"results": [{"params": {}, "val": {"mean": "x"}}]}\n'
    ),
    "a trial folder that is a symlink out": lambda run: (run / "round-0" / "run_trial_zzzzz_00009_9").symlink_to("/"),
    "params.json a symlink to /etc/passwd": lambda run: (
        _trial(run, "params.json").unlink(),
        _trial(run, "params.json").symlink_to("/etc/passwd"),
    ),
    "huge values in result.json": lambda run: _trial(run, "result.json").write_text(
        '{"epoch": 1, "val_acc": 1e308, "val_loss": -1e308, "train_loss": 1e999}\n'
    ),
    "error.txt of random bytes": lambda run: _trial(run, "error.txt").write_bytes(bytes(range(256)) * 40),
    "round folder a file": lambda run: (shutil.rmtree(run / "round-0"), (run / "round-0").write_text("x")),
}


# Drawing a report is slow: the cases whose damage only a report reads are reported.
REPORTED = {
    "wrong types in result.json",
    "params.json values of the wrong type",
    "garbage best.yaml",
    "run.json round parameters hostile",
    "asha-rungs.json hostile",
    "retest history hostile",
    "huge values in result.json",
}


@pytest.mark.parametrize("label", list(CASES))
def test_each_class_of_damaged_run_directory(label: str) -> None:
    count("5 tracebacks instead of one line", label)
    root, run = _copy()
    CASES[label](run)
    _commands(root, run, report=label in REPORTED, resume=True)


def test_a_run_directory_that_is_not_one() -> None:
    count("5 tracebacks instead of one line", "not a run directory")
    root = scratch()
    (root / "afile").write_text("x")
    for target in ("nope", "afile", ".", "/proc/self", "s3://"):
        for argv in (["export", target, "-o", "x.yaml"], ["report", target, "-o", "rep"], ["resume", target]):
            check(run_cli(argv, root))
