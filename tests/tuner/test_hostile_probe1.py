"""What probe 1 found (export, retest, train, evaluate, user data): an export that disagrees with
itself, a loop of links as an output, a data function returning nonsense, a retest through a
link, a link into a folder that does not exist, a misleading evaluate line, a tampered model
file; each now one line and exit 2 (or the right answer)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.tuner.fake_run import epochs, make_run
from tests.tuner.test_retesting import FakeRay
from tuner.cli import main
from tuner.errors import InputError
from tuner.export_file import export_run
from tuner.files import read_bytes
from tuner.final import evaluate_file
from tuner.model_file import load_model
from tuner.models import sources
from tuner.models.data import DataError, Dataset
from tuner.outputs import check_not_input, check_output
from tuner.records import history_path
from tuner.retesting import check_writable, sweep_with_data
from tuner.storage import RunStore, check_storage


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def _export(tmp_path: Path, n: int = 2) -> Path:
    trials = [({"train.lr": 0.05 * (i + 1), "train.momentum": 0.9}, epochs(0.5, 0.6, 0.8 - 0.1 * i)) for i in range(n)]
    return export_run(make_run(tmp_path, trials))


def _edited(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    out = path.with_name("edited.yaml")
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


# -- 1. an export that disagrees with itself -------------------------------------------------------


def _set_params(doc: dict[str, Any]) -> None:
    doc["params"]["train.lr"] = 0.5


def _set_config(doc: dict[str, Any]) -> None:
    doc["config"]["train"]["lr"] = 0.5


def _set_top(doc: dict[str, Any]) -> None:
    doc["top"][0]["params"]["train.momentum"] = 0.99


def _drop_top_key(doc: dict[str, Any]) -> None:
    del doc["top"][0]["params"]["train.momentum"]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_set_params, "params.train.lr: 0.5 differs from config.train.lr 0.05"),
        (_set_config, "params.train.lr: 0.05 differs from config.train.lr 0.5"),
        (_set_top, "top[0].params.train.momentum: 0.99 differs from params.train.momentum 0.9"),
        (_drop_top_key, "top[0].params.train.momentum: absent differs from params.train.momentum 0.9"),
    ],
)
@pytest.mark.parametrize("command", ["train", "retest", "run", "validate"])
def test_an_export_whose_parts_disagree_is_refused_by_every_command(
    edit: Callable[[dict[str, Any]], None],
    expected: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = _edited(_export(tmp_path), edit)
    before = bad.read_bytes()
    ray = FakeRay(monkeypatch, [])
    args = {
        "train": ["train", str(bad), "-o", str(tmp_path / "m.pt")],
        "retest": ["retest", str(bad), "--seeds", "2"],
        "run": ["run", str(bad), "--storage", str(tmp_path / "runs")],
        "validate": ["validate", str(bad)],
    }[command]
    assert main(args) == 2
    err = _err(capsys)
    assert any(line == f"{bad}: {expected}" + line.split(expected, 1)[1] for line in err), err
    assert all(line.startswith(f"{bad}: ") for line in err), err
    assert bad.read_bytes() == before and not ray.calls
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "runs").exists()
    assert not history_path(bad).exists()


def test_an_export_as_written_and_as_retested_agrees_with_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _export(tmp_path, n=2)
    FakeRay(monkeypatch, [[0.5, 0.52, 0.9, 0.92]])  # the second configuration wins the retest
    assert main(["retest", str(path), "--seeds", "2"]) == 0
    doc = yaml.safe_load(path.read_text())
    assert doc["params"] == doc["top"][0]["params"] and doc["params"]["train.lr"] == 0.1
    assert doc["config"]["train"]["lr"] == 0.1
    assert main(["validate", str(path)]) == 0


# -- 2. a loop of links as an output ----------------------------------------------------------------


def _loop(tmp_path: Path) -> Path:
    a, b = tmp_path / "loop1.pt", tmp_path / "loop2.pt"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def test_a_loop_of_links_as_an_output_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = _loop(tmp_path)
    for call in (
        lambda: check_output(loop),
        lambda: check_output(loop, "--storage", folder=True),
        lambda: check_not_input(loop, [tmp_path / "x.yaml"]),
        lambda: check_storage(str(loop)),
        lambda: RunStore.open(str(loop)),
        lambda: RunStore.create(str(loop), "x"),
    ):
        with pytest.raises(InputError, match="Too many levels of symbolic links"):
            call()
    path = _export(tmp_path)
    assert main(["export", str(path.parent), "-o", str(loop)]) == 2
    assert _err(capsys) == [f"-o: {loop}: Too many levels of symbolic links"]
    assert main(["train", str(path), "-o", str(loop)]) == 2
    assert _err(capsys) == [f"-o: {loop}: Too many levels of symbolic links"]


# -- 3. a data function returning nonsense ----------------------------------------------------------


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(40, 5)).astype(np.float32),
        "y_train": rng.integers(0, 3, 40),
        "x_test": rng.normal(size=(10, 5)).astype(np.float32),
        "y_test": rng.integers(0, 3, 10),
    }


class _RaisingMapping(dict):  # type: ignore[type-arg]
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("boom\nsecond line")


class _RaisingContains(dict):  # type: ignore[type-arg]
    def __contains__(self, key: Any) -> bool:
        raise SystemExit(3)


def _dataset(**changes: Any) -> Dataset:
    a = _arrays()
    splits = {
        "x_train": a["x_train"][:30],
        "y_train": a["y_train"][:30],
        "x_val": a["x_train"][30:],
        "y_val": a["y_train"][30:],
        "x_test": a["x_test"],
        "y_test": a["y_test"],
    }
    splits.update(changes)
    return Dataset("mine", num_outputs=3, **splits)


@pytest.mark.parametrize(
    "returned, rule",
    [
        (lambda: _RaisingMapping(_arrays()), "cannot be read: RuntimeError: boom"),
        (lambda: _RaisingContains(_arrays()), "cannot be read: SystemExit: 3"),
        (lambda: _dataset(x_val=None, y_val=None), "x_val must be a numpy array of samples, not NoneType"),
        (lambda: _dataset(x_val=np.zeros((10, 2, 5), np.float32)), "x_val has samples of shape (2, 5)"),
        (lambda: _dataset(y_val=np.zeros(3, np.int64)), "x_val holds 10 samples, its y_val 3"),
        (lambda: _dataset(x_train=[[0.0] * 5] * 30), "x_train must be a numpy array of samples, not list"),
    ],
)
def test_a_data_function_returning_nonsense_is_a_data_error_naming_it(returned: Callable[[], Any], rule: str) -> None:
    with pytest.raises(DataError) as e:
        sources.from_function("mydata:fn", {}, lambda ref: returned)
    assert str(e.value).startswith("mydata:fn: ") and rule in str(e.value) and "\n" not in str(e.value)


def test_a_good_dataset_from_a_function_is_joined() -> None:
    x, y, xt, yt = sources.from_function("mydata:fn", {}, lambda ref: _dataset)
    assert x.shape == (40, 5) and len(y) == 40 and xt.shape == (10, 5) and len(yt) == 10


# -- 4. retest through a link -----------------------------------------------------------------------


def test_retest_of_an_export_that_is_a_link_rewrites_its_file_and_keeps_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _export(tmp_path / "a", n=1)
    (tmp_path / "b").mkdir()
    link = tmp_path / "b" / "lnk.yaml"
    link.symlink_to(real)
    FakeRay(monkeypatch, [[0.7, 0.72]])
    assert main(["retest", str(link), "--seeds", "2"]) == 0
    assert link.is_symlink() and link.resolve() == real
    assert "retest" in yaml.safe_load(real.read_text())
    assert history_path(real).is_file() and not history_path(link).exists()
    assert check_writable(link) == real


def test_a_history_that_is_a_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _export(tmp_path, n=1)
    history_path(path).mkdir()
    assert main(["retest", str(path), "--seeds", "2"]) == 2
    (line,) = _err(capsys)
    assert line.startswith(f"{history_path(path)}: the retest history of {path} is a folder"), line


# -- 5. a link into a folder that does not exist ----------------------------------------------------


def test_o_through_a_link_into_a_missing_folder_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _export(tmp_path / "run", n=1)
    link = tmp_path / "dl.yaml"
    link.symlink_to(tmp_path / "nonexist" / "dir" / "t.yaml")
    assert main(["export", str(path.parent), "-o", str(link)]) == 2
    (line,) = _err(capsys)
    assert line.startswith(f"-o: {link}: a link to ") and "whose folder does not exist" in line
    assert not (tmp_path / "nonexist").exists() and link.is_symlink()
    # a plain path still gets its folders
    assert main(["export", str(path.parent), "-o", str(tmp_path / "new" / "sub" / "b.yaml")]) == 0


# -- 6. evaluate on data of the other task ----------------------------------------------------------


def test_evaluate_on_data_of_the_other_task_names_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _export(tmp_path, n=1)
    model = tmp_path / "m.pt"
    assert main(["train", str(path), "-o", str(model)]) == 0
    with pytest.raises(InputError) as e:
        evaluate_file(model, {"name": "diabetes"})
    assert e.value.problems == [f"{model}: data: classification model, but the data's targets are for regression"]
    a = _arrays()
    a["y_test"] = a["y_test"].astype(np.float64) + 0.5
    np.savez(tmp_path / "floatlab.npz", **a)
    with pytest.raises(InputError, match="classification model, but the data's targets are for regression"):
        evaluate_file(model, {"name": "npz", "path": str(tmp_path / "floatlab.npz")})


# -- 7. a tampered model file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, rule",
    [
        ("num_outputs", 10.7, "num_outputs: 10.7 is not an integer"),
        ("num_outputs", True, "num_outputs: True is not an integer"),
        ("input_shape", [True, 40], "input_shape[0]: True is not an integer"),
        ("input_shape", [1, 40.0], "input_shape[1]: 40.0 is not an integer"),
        ("input_shape", "40", "input_shape: '40' is not a list"),
    ],
)
def test_a_model_files_counts_must_be_integers(key: str, value: Any, rule: str, tmp_path: Path) -> None:
    path = _export(tmp_path, n=1)
    model = tmp_path / "m.pt"
    assert main(["train", str(path), "-o", str(model)]) == 0
    payload = torch.load(io.BytesIO(read_bytes(model, limit=1 << 30)), weights_only=True)
    payload[key] = value
    torch.save(payload, model)
    with pytest.raises(InputError, match=f"not a tuner model file \\(malformed: {__import__('re').escape(rule)}"):
        load_model(model)


# -- 9. wording -------------------------------------------------------------------------------------


def test_a_folder_given_as_an_export_says_an_export_file(tmp_path: Path) -> None:
    import tuner

    with pytest.raises(InputError, match="is a folder, not an export file"):
        tuner.load_best(tmp_path)


def test_a_data_path_that_is_a_loop_of_links_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _loop(tmp_path)
    path = _export(tmp_path, n=1)
    config = yaml.safe_load(path.read_text())["config"]
    with pytest.raises(InputError) as e:
        sweep_with_data(config, "e.yaml: config", {"name": "npz", "path": "loop1.pt"})
    assert e.value.problems == [
        "e.yaml: config: --data path: 'loop1.pt': cannot read (Too many levels of symbolic links)"
    ]
