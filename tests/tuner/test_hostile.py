"""Issue 10's classes closed: each test is a hostile input that once gave a traceback, ran
code, wrote in the wrong place or hung, and now is one line and exit 2 (or a right answer)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs, make_run, write_export
from tuner.cli import main
from tuner.errors import InputError
from tuner.files import load_yaml
from tuner.final import diverged, load_model
from tuner.models.data import Dataset, extreme_value
from tuner.outputs import check_output
from tuner.results import load_run


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# -- reading files ------------------------------------------------------------------------------


def test_bytes_that_are_not_text_are_one_line_naming_the_file() -> None:
    with pytest.raises(InputError) as e:
        load_yaml(b"name: a\xa8b\n", "s.yaml")
    assert len(e.value.problems) == 1 and "\n" not in e.value.problems[0]
    assert e.value.problems[0].startswith("s.yaml: invalid YAML: ")


def test_deep_nesting_is_refused_before_parsing() -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="nested more than 200 levels deep"):
        load_yaml("[" * 50_000, "s.yaml")
    assert time.monotonic() - started < 1  # PyYAML alone takes seconds, quadratic in the depth
    assert load_yaml("a: [[1, {b: [2]}]]", "s.yaml") == {"a": [[1, {"b": [2]}]]}


@pytest.mark.parametrize("bad", ["", "   ", "a" * 300 + "/x", "x\x00y"])
def test_o_that_is_not_a_usable_path(bad: str) -> None:
    with pytest.raises(InputError, match="^-o: "):
        check_output(bad)


def test_a_tilde_in_o_is_written_where_it_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run), "-o", "~/best.yaml"]) == 0
    assert (home / "best.yaml").is_file() and not (tmp_path / "~").exists()


def test_o_onto_a_link_writes_the_file_it_names_and_keeps_the_link(tmp_path: Path) -> None:
    run = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    (tmp_path / "configs").mkdir()
    target = tmp_path / "configs" / "best.yaml"
    target.write_text("old: 1\n")
    link = tmp_path / "best.yaml"
    link.symlink_to(target)
    assert main(["export", str(run), "-o", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == target
    assert "old" not in target.read_text() and load_yaml(target.read_bytes(), str(target))["config"]
    dangling = tmp_path / "next.yaml"
    dangling.symlink_to(tmp_path / "configs" / "new.yaml")  # cp onto a dangling link makes its file
    assert main(["export", str(run), "-o", str(dangling)]) == 0
    assert dangling.is_symlink() and (tmp_path / "configs" / "new.yaml").is_file()
    (tmp_path / "dir-link").symlink_to(tmp_path / "configs")
    with pytest.raises(InputError, match="is a folder"):
        check_output(tmp_path / "dir-link")


def test_an_empty_name_is_refused(write_sweep: Callable[..., Path], tmp_path: Path, capsys: Any) -> None:
    assert main(["run", str(write_sweep()), "--name", "", "--storage", str(tmp_path / "runs")]) == 2
    assert "name: '' must be 1-100 letters" in _err(capsys)[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("where", ["afile", "afile/sub", "/proc/x", "/sys/x", ""])
def test_report_o_that_cannot_be_a_folder(where: str, tmp_path: Path, capsys: Any) -> None:
    run = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    write_export(run)
    (tmp_path / "afile").write_text("x")
    target = where if where.startswith("/") or not where else str(tmp_path / where)
    assert main(["report", str(run), "-o", target]) == 2
    err = _err(capsys)
    assert len(err) == 1 and err[0].startswith("-o: "), err
    assert (tmp_path / "afile").read_text() == "x" and not (run / "report").exists()


# -- data -----------------------------------------------------------------------------------------

DATA_FUNCTIONS = """
def exits(**kw):
    raise SystemExit(3)

def generator_exit(**kw):
    raise GeneratorExit

def memory(**kw):
    raise MemoryError
"""


@pytest.mark.parametrize("fn, said", [("exits", "SystemExit: 3"), ("memory", "MemoryError")])
def test_a_data_function_that_exits_is_one_line(fn: str, said: str, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "hostile_data.py").write_text(DATA_FUNCTIONS)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(data={"name": f"hostile_data:{fn}"})))
    assert main(["try", str(sweep), "--epochs", "1"]) == 2
    err = _err(capsys)
    assert err == [f"{sweep}: data: hostile_data:{fn}: the data function raised {said}"], err


def test_a_module_that_exits_while_imported_is_one_line(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(4)\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(data={"name": "exits_on_import:fn"})))
    assert main(["validate", str(sweep)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "importing it raised SystemExit: 4" in err[0], err


def test_a_single_npy_array_is_not_an_npz(tmp_path: Path, capsys: Any) -> None:
    np.save(tmp_path / "x.npy", np.zeros((10, 3)))
    (tmp_path / "x.npy").rename(tmp_path / "x.npz")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(data={"name": "npz", "path": str(tmp_path / "x.npz")})))
    assert main(["try", str(sweep), "--epochs", "1"]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "a single .npy array, not an .npz archive" in err[0], err


def _dataset(x: np.ndarray) -> Dataset:
    y = np.zeros(len(x), dtype=np.int64)
    return Dataset("d", x, y, x[:2], y[:2], x[:2], y[:2], 2)


def test_a_diverging_final_training_blames_the_data_when_it_holds_extreme_values() -> None:
    x = np.ones((10, 3), dtype=np.float32)
    x[4, 2] = 3e30
    line = diverged("e.yaml", float("nan"), 2, _dataset(x), {"train.lr": 0.01})
    assert line.startswith("e.yaml: data: training diverged") and "x_train[4, 2] = 3e+30" in line
    assert extreme_value(_dataset(np.ones((10, 3), dtype=np.float32))) is None
    line = diverged("e.yaml", float("inf"), 1, _dataset(np.ones((10, 3), dtype=np.float32)), {"train.lr": 1e5})
    assert line.startswith("e.yaml: params: training diverged") and "train.lr 100000.0" in line
    assert "configuration is unstable" in line


# -- run directories and exports -----------------------------------------------------------


def test_a_searched_number_of_the_wrong_type_in_params_json_is_bad_input(tmp_path: Path) -> None:
    run = make_run(tmp_path, [({"train.lr": {"a": 1}, "train.momentum": 0.9}, epochs(0.5))])
    with pytest.raises(InputError, match=r"params: train.lr: \{'a': 1\} must be a finite number"):
        load_run(run)


@pytest.mark.parametrize(
    "params, rule",
    [
        ({1: 2}, "a parameter must be a dotted path into the config"),
        ({"data.path": "/etc/passwd"}, "not a searchable key of the config"),
        ({"name": "../../x"}, "not a searchable key of the config"),
        ({"resources.cpu": 64}, "not a searchable key of the config"),
    ],
)
def test_retest_refuses_top_parameters_that_are_not_searchable(
    params: dict[Any, Any], rule: str, tmp_path: Path, capsys: Any
) -> None:
    run = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])
    path = write_export(run)
    doc = yaml.safe_load(path.read_text())
    doc["top"][0]["params"] = params
    path.write_text(yaml.safe_dump(doc))
    assert main(["retest", str(path)]) == 2
    err = _err(capsys)
    assert len(err) == 1 and rule in err[0], err


# -- model files ---------------------------------------------------------------------------------


def _model_file(tmp_path: Path, **changes: Any) -> Path:
    from tuner.final import MODEL_FORMAT
    from tuner.models import build_model
    from tuner.spec import from_dict

    sweep = from_dict(tiny_sweep(), source="tiny.yaml")
    model = build_model(sweep.config["model"], (8,), 3)
    payload = {
        "format": MODEL_FORMAT,
        "config": sweep.to_dict(),
        "input_shape": [8],
        "num_outputs": 3,
        "state_dict": model.state_dict(),
        "task": "classification",
    }
    for key, value in changes.items():
        if key == "hidden":
            payload["config"]["model"]["hidden"] = value  # type: ignore[index]
        else:
            payload[key] = value
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp_path / "m.pt").write_bytes(buf.getvalue())
    return tmp_path / "m.pt"


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"hidden": [10**6, 10**6]}, "must hold at most 200,000,000 weights"),
        ({"input_shape": [10**7, 10**7, 10]}, "the network needs (16, 1000000000000000)"),
        ({"target_mean": "x", "target_std": [1, 2]}, "not a tuner model file (malformed: target_mean)"),
    ],
)
def test_a_model_file_describing_a_huge_or_odd_network_allocates_nothing(
    changes: dict[str, Any], said: str, tmp_path: Path
) -> None:
    path = _model_file(tmp_path, **changes)
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        load_model(path)
    assert said in str(e.value) and time.monotonic() - started < 10


def test_a_model_file_with_nan_weights_is_refused(tmp_path: Path) -> None:
    from tuner.models import build_model
    from tuner.spec import from_dict

    state = build_model(from_dict(tiny_sweep(), source="t.yaml").config["model"], (8,), 3).state_dict()
    state = {k: v * float("nan") if v.is_floating_point() else v for k, v in state.items()}
    with pytest.raises(InputError, match=r"state_dict\.blocks\.0\.linear\.weight: holds NaN or infinite values"):
        load_model(_model_file(tmp_path, state_dict=state))


def test_a_foreign_pickle_is_one_line_without_torchs_warning(tmp_path: Path, capsys: Any) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> Any:
            return (print, ("PWNED",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}, protocol=4))
    assert main(["evaluate", str(tmp_path / "evil.pt")]) == 2
    captured = capsys.readouterr()
    assert "PWNED" not in captured.out
    assert captured.err.strip().splitlines() == [f"{tmp_path / 'evil.pt'}: not a tuner model file (UnpicklingError)"]


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path: Path, capsys: Any) -> None:
    for argv in (["evaluate", "a" * 300], ["export", "a" * 300], ["report", "a" * 300]):
        assert main(argv) == 2, argv
        assert len(_err(capsys)) == 1
