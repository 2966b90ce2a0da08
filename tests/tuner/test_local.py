"""``tuner try``: one trial of a sweep's base configuration in this process, without Ray --
the loop a user goes through while writing a trial function."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, tiny_function_sweep, tiny_sweep
from tests.fixtures_data import write_user_project
from tuner.cli import main
from tuner.errors import InputError, RunError
from tuner.local import try_trial
from tuner.spec import load_sweep


@pytest.fixture
def fresh_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A user project's ``train`` and ``models`` imported afresh (each test's project is another
    folder), and forgotten afterwards."""
    import importlib

    for name in [m for m in sys.modules if m in ("train", "models") or m.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    yield
    for name in [m for m in sys.modules if m in ("train", "models") or m.startswith("models.")]:
        del sys.modules[name]


def function_sweep(tmp_path: Path, **config: Any) -> Path:
    """A sweep of ``tests.fixtures_data:user_fit`` (metric val_f1) on the tiny synthetic set."""
    raw = tiny_function_sweep(
        "tests.fixtures_data:user_fit",
        metric="val_f1",
        config={"epochs": 4, "lr": 0.05, "width": 8, **config},
        search={"method": "random", "num_samples": 2, "parameters": {"lr": {"values": [0.05, 0.1]}}},
        scheduler={"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_try_prints_every_report_as_it_comes_and_stops_after_epochs(tmp_path: Path) -> None:
    lines: list[str] = []
    run = try_trial(load_sweep(function_sweep(tmp_path)), epochs=2, write=lines.append)
    assert lines[0] == "try tests.fixtures_data:user_fit on synthetic (cpu, 1 threads), metric val_f1 (max)"
    assert [line.split(":")[0] for line in lines[1:3]] == ["epoch 1", "epoch 2"]
    for key in ("train_loss", "val_loss", "val_acc", "val_f1", "epoch_s"):
        assert f" {key} " in lines[1]
    assert lines[-1] == f"done: 2 reports; last val_f1 {run.reports[-1]['val_f1']:.6g}"
    assert run.epoch == 2 and "test_f1" not in run.reports[-1]  # a search's data: no test split
    assert run.seed == 0 and run.trial_id == "try"


def test_try_stops_at_the_sweeps_budget_as_a_search_trial_would(tmp_path: Path) -> None:
    sweep = load_sweep(function_sweep(tmp_path, epochs=10))  # the function would go on to 10
    run = try_trial(sweep, write=lambda _: None)
    assert sweep.max_t == 4 and run.epoch == 4


def test_try_of_the_built_in_trainer_trains_for_epochs(tmp_path: Path, write_sweep: Any) -> None:
    lines: list[str] = []
    run = try_trial(load_sweep(write_sweep(**{"train.epochs": 5})), epochs=2, write=lines.append)
    assert run.epoch == 2 and "tuner.models.train:fit" in lines[0]
    assert {"train_loss", "val_loss", "val_acc", "samples_per_s"} <= set(run.reports[-1])


def test_try_shows_a_divergence(tmp_path: Path) -> None:
    lines: list[str] = []
    run = try_trial(load_sweep(function_sweep(tmp_path, lr=2.0, diverge_above=1.0)), write=lines.append)
    assert run.epoch == 2 and run.reports[-1]["diverged"] is True
    assert lines[-2].startswith("epoch 2:") and lines[-2].endswith("(diverged)")
    assert lines[-1] == "done: 2 reports; last val_f1 -inf (diverged)"


def test_bad_epochs_and_a_function_that_never_reports_are_said_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--epochs: 0 must be >= 1"):
        try_trial(load_sweep(function_sweep(tmp_path)), epochs=0)
    raw = yaml.safe_load(function_sweep(tmp_path).read_text())
    raw["function"] = "tests.fixtures_data:user_fit_returns_early"
    (tmp_path / "silent.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(RunError, match="returned without a single run.report"):
        try_trial(load_sweep(tmp_path / "silent.yaml"), write=lambda _: None)


def test_tuner_try_shows_the_functions_own_traceback_without_starting_ray(tmp_path: Path) -> None:
    """A subprocess, as a user runs it: exit 1, Python's own traceback down to the user's
    line, then one line naming the error; Ray is never imported."""
    sweep = function_sweep(tmp_path, raise_at=2)
    code = (
        "import sys; from tuner.cli import main; code = main(['try', sys.argv[1]]);"
        "print('RAY IMPORTED' if 'ray' in sys.modules else 'NO RAY'); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(sweep)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "epoch 1: " in proc.stdout and "epoch 2: " not in proc.stdout  # epoch 1's report came as it was made
    assert "NO RAY" in proc.stdout
    err = proc.stderr
    assert "Traceback (most recent call last):" in err
    assert 'fixtures_data.py", line' in err and "in user_fit" in err and 'raise ValueError(f"user_fit' in err
    assert err.rstrip().splitlines()[-1] == (
        "tuner try: the trial function failed: ValueError: user_fit: bad batch at epoch 2"
    )


def test_tuner_try_of_a_bad_sweep_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", str(function_sweep(tmp_path)), "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--epochs: 0 must be >= 1" in err and "\n" not in err


@pytest.mark.parametrize(("layout", "marker"), [("module", 1.0), ("package", 2.0)])
@pytest.mark.usefixtures("fresh_modules")
def test_a_project_with_its_own_models_runs_beside_tuners_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, marker: float
) -> None:
    """A user's ``models.py`` or ``models/`` package beside the sweep file: the user's function
    imports its own, found without PYTHONPATH; tuner's are tuner.models. Run from the
    repository's root, whose ``models/`` folder (tuner's, on ``sys.path`` here) is what a
    top-level ``models`` would clash with."""
    import tuner.models

    log = tmp_path / "where.jsonl"
    sweep = write_user_project(tmp_path / "project", layout, **{"config.log": str(log)})
    monkeypatch.chdir(ROOT)
    assert (ROOT / "models" / "__init__.py").is_file()
    run = try_trial(load_sweep(sweep), write=lambda _: None)
    assert run.epoch == 2 and run.reports[-1]["own_models"] == marker and run.reports[-1]["tuner_mlp"] == 1.0
    (where,) = [json.loads(line) for line in log.read_text().splitlines()]
    own = tmp_path / "project" / ("models.py" if layout == "module" else "models/__init__.py")
    assert where["models"] == str(own.resolve()) and where["train"] == str((tmp_path / "project/train.py").resolve())
    assert where["tuner.models"] == str(Path(tuner.models.__file__).resolve())
    assert sys.modules["models"].MARKER == marker and tuner.models.MLP.__module__ == "tuner.models.mlp"


@pytest.mark.usefixtures("fresh_modules")
def test_the_shipped_regression_example_and_sweep_try_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """``examples/regression`` (a user's function with its own models.py) and
    ``sweeps/diabetes_mlp.yaml`` (the built-in trainer on regression) validate and train."""
    monkeypatch.chdir(ROOT)
    run = try_trial(load_sweep(ROOT / "examples" / "regression" / "sweep.yaml"), epochs=2, write=lambda _: None)
    assert {"train_loss", "val_rmse", "val_mae", "val_within_10pct"} <= set(run.reports[-1]) and run.epoch == 2
    assert sys.modules["models"].__file__ == str(ROOT / "examples" / "regression" / "models.py")
    builtin = try_trial(load_sweep(ROOT / "sweeps" / "diabetes_mlp.yaml"), epochs=1, write=lambda _: None)
    assert {"train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"} <= set(builtin.reports[-1])


USER_MODELS = """
import torch


def returns_str(input_shape, num_outputs, **kw):
    return "not a module"


def wrong_inputs(input_shape, num_outputs, **kw):
    return torch.nn.Linear(input_shape[0] + 3, num_outputs)


def wrong_outputs(input_shape, num_outputs, **kw):
    return torch.nn.Linear(input_shape[0], num_outputs + 5)


class Broken(torch.nn.Module):
    def forward(self, x):
        raise ValueError("broken forward")


def broken(input_shape, num_outputs, **kw):
    return Broken()
"""


@pytest.mark.parametrize(
    ("function", "rule"),
    [
        ("returns_str", "returned str, not a torch.nn.Module"),
        ("wrong_inputs", "fails on a batch of shape (2, 8): RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
        ("wrong_outputs", "maps a batch of shape (2, 8) to a torch.float32 tensor of shape (2, 8); it must return"),
        ("broken", "fails on a batch of shape (2, 8): ValueError: broken forward"),
    ],
)
def test_tuner_try_of_a_user_model_function_that_breaks_its_contract_is_the_users_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], function: str, rule: str
) -> None:
    """The user's model function returns no network, or one that does not fit the data: the
    user's failure (exit 1, one line naming the sweep file, the function and the rule, the
    user's own frames under it), never tuner's internal error."""
    module = f"user_models_{function}"
    (tmp_path / f"{module}.py").write_text(USER_MODELS)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(**{"model.name": f"{module}:{function}"})))
    try:
        with pytest.raises(RunError, match="sweep.yaml: model.name: ") as caught:
            try_trial(load_sweep(sweep), epochs=1, write=lambda _: None)
        assert rule in str(caught.value)
        assert main(["try", str(sweep), "--epochs", "1"]) == 1
    finally:
        sys.modules.pop(module, None)
    err = capsys.readouterr().err
    assert "internal error" not in err and "a bug in tuner" not in err
    assert err.splitlines()[0] == f"tuner: {caught.value}"
    if function == "broken":  # the user's own frame, under the line
        assert f"{module}.py" in err and 'raise ValueError("broken forward")' in err


# -- what a function does that it should not -----------------------------------------------------

MISBEHAVING = """
import os
import signal
import sys


def exits(config, run):
    run.report({"score": 1.0})
    sys.exit(config["code"])


def interrupts(config, run):
    run.report({"score": 1.0})
    raise KeyboardInterrupt


def ctrl_c(config, run):
    run.report({"score": 1.0})
    os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while it trains


def in_place(config, run):
    run.data.x_train -= run.data.x_train.mean(0)  # in-place standardisation of the shared data
    run.report({"score": 1.0})


def odd_keys(config, run):
    run.report({"score": 1.0, "line\\nbreak": 2.0, "esc\\x1b[2Jape": 3.0})


def generator(config, run):
    yield run.report({"score": 1.0})
"""


@pytest.fixture
def misbehaving(tmp_path: Path) -> Iterator[Any]:
    """``sweep(name, **config)``: a sweep file of ``proj_bad:name`` on the tiny synthetic set."""
    import importlib
    import signal

    (tmp_path / "proj_bad.py").write_text(MISBEHAVING)

    def sweep(name: str, **config: Any) -> Path:
        path = tmp_path / f"{name}.yaml"
        raw = {
            "metric": "score",
            "mode": "max",
            "function": f"proj_bad:{name}",
            "config": {"lr": 0.1, **config},
            "data": tiny_sweep()["data"],
            "search": {"num_samples": 2, "parameters": {"lr": {"values": [0.1, 0.2]}}},
            "scheduler": {"name": "asha", "max_t": 2, "grace_period": 1},
        }
        path.write_text(yaml.safe_dump(raw))
        return path

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the tuner command
    yield sweep
    signal.signal(signal.SIGINT, previous)
    sys.modules.pop("proj_bad", None)
    importlib.invalidate_caches()


@pytest.mark.parametrize("code", [0, 3, None, "bye"])
def test_a_function_that_calls_sys_exit_fails_the_try_instead_of_ending_it(
    misbehaving: Any, capsys: pytest.CaptureFixture[str], code: Any
) -> None:
    sweep = misbehaving("exits", code=code)
    with pytest.raises(RunError) as e:
        try_trial(load_sweep(sweep), write=lambda _: None)
    shown = "" if code is None else repr(code)
    assert str(e.value).startswith(
        f"the trial function proj_bad:exits called sys.exit({shown}) (in exits, at proj_bad.py:9)"
    )
    assert any("sys.exit(config" in line for line in e.value.details)  # the user's frame, its line
    assert main(["try", str(sweep)]) == 1  # never the function's exit status, never 0
    err = capsys.readouterr().err
    assert (
        err.startswith(f"tuner: the trial function proj_bad:exits called sys.exit({shown})") and "internal" not in err
    )


def test_a_function_that_raises_keyboard_interrupt_itself_fails_but_a_ctrl_c_still_interrupts(
    misbehaving: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RunError, match=r"proj_bad:interrupts raised KeyboardInterrupt \(no Ctrl-C came\)"):
        try_trial(load_sweep(misbehaving("interrupts")), write=lambda _: None)
    assert main(["try", str(misbehaving("interrupts"))]) == 1
    with pytest.raises(KeyboardInterrupt):  # a real SIGINT: the user stops tuner try
        try_trial(load_sweep(misbehaving("ctrl_c")), write=lambda _: None)
    assert main(["try", str(misbehaving("ctrl_c"))]) == 130
    import signal

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_try_gives_the_function_read_only_data_as_a_trial_gets(misbehaving: Any) -> None:
    sweep = load_sweep(misbehaving("in_place"))
    with pytest.raises(ValueError, match="read-only"):
        try_trial(sweep, write=lambda _: None)
    from tuner import datasets

    assert datasets.load(sweep).x_train.flags.writeable  # the loaded data itself is left as it was


def test_try_escapes_what_the_function_reports_before_printing_it(misbehaving: Any) -> None:
    lines: list[str] = []
    try_trial(load_sweep(misbehaving("odd_keys")), write=lines.append)
    assert all("\n" not in line and "\x1b" not in line for line in lines)
    assert "line\\nbreak 2" in lines[1] and "esc\\x1b[2Jape 3" in lines[1]


def test_try_of_a_generator_function_is_bad_input(misbehaving: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["try", str(misbehaving("generator"))]) == 2
    err = capsys.readouterr().err
    assert "function: 'proj_bad:generator' is a generator function" in err and err.count("\n") == 1
