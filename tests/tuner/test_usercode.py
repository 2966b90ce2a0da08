"""A user's code named in a sweep: where it is looked up, and what is shipped to a cluster."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuner import usercode


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Run from an empty folder, and forget the modules the test's projects define."""
    import importlib

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    names = ("proj_train", "proj_pkg", "proj_ns", "proj_data")
    yield cwd
    for name in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_a_module_beside_the_sweep_file_ships_its_folder_as_the_working_dir(tmp_path: Path, clean: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "proj_train.py").write_text("def fit(config, run):\n    pass\n")
    env = usercode.runtime_env(["proj_train:fit"], project)
    assert env == {"working_dir": str(project.resolve()), "excludes": usercode.SHIP_EXCLUDES}
    assert {".git", ".venv", "runs", "*.pt", "__pycache__"} <= set(env["excludes"])
    assert callable(usercode.resolve("proj_train:fit", project))


def test_an_installed_module_is_not_shipped(clean: Path) -> None:
    assert usercode.runtime_env(["tuner.models.train:fit", "json:loads"], clean) == {}


def test_code_from_another_folder_travels_as_py_modules(tmp_path: Path, clean: Path) -> None:
    project, other = tmp_path / "project", clean  # the data function is in the current folder
    project.mkdir()
    (project / "proj_train.py").write_text("def fit(config, run):\n    pass\n")
    (other / "proj_pkg").mkdir()
    (other / "proj_pkg" / "__init__.py").write_text("")
    (other / "proj_pkg" / "nets.py").write_text("def net(*a):\n    pass\n")
    (other / "proj_data.py").write_text("def load():\n    pass\n")
    env = usercode.runtime_env(["proj_train:fit", "proj_pkg.nets:net", "proj_data:load"], project)
    assert env["working_dir"] == str(project.resolve())
    assert env["py_modules"] == [str((other / "proj_pkg").resolve()), str((other / "proj_data.py").resolve())]


def test_a_namespace_package_is_found_and_shipped(tmp_path: Path, clean: Path) -> None:
    project = tmp_path / "project"
    (project / "proj_ns").mkdir(parents=True)  # no __init__.py
    (project / "proj_ns" / "train.py").write_text("def fit(config, run):\n    pass\n")
    assert usercode.runtime_env(["proj_ns.train:fit"], project) == {
        "working_dir": str(project.resolve()),
        "excludes": usercode.SHIP_EXCLUDES,
    }


def test_an_export_in_its_run_directory_finds_the_code_where_the_run_started(tmp_path: Path, clean: Path) -> None:
    """``runs/NAME/best.yaml`` is not beside the user's code: the run's ``run.json`` names the
    sweep file it started from, and its folder is looked in; a run of that export (its sweep
    file the first run's export) leads back there too."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "proj_train.py").write_text("def fit(config, run):\n    pass\n")
    first = tmp_path / "runs" / "first"
    first.mkdir(parents=True)
    (first / "run.json").write_text(json.dumps({"provenance": {"sweep_file": str(project / "sweep.yaml")}}))
    second = tmp_path / "runs" / "second"
    second.mkdir()
    (second / "run.json").write_text(json.dumps({"provenance": {"sweep_file": str(first / "best.yaml")}}))
    assert usercode.recorded_folders(second) == [first, project]
    assert usercode.search_path(second) == [
        str(second.resolve()),
        str(first.resolve()),
        str(project.resolve()),
        str(clean.resolve()),
    ]
    assert callable(usercode.resolve("proj_train:fit", second))
    assert usercode.runtime_env(["proj_train:fit"], second)["working_dir"] == str(project.resolve())


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"provenance": {"sweep_file": 3}}', '{"provenance": null}', '{"x": 1}']
)
def test_a_run_json_that_says_nothing_usable_adds_no_folder(tmp_path: Path, content: str) -> None:
    (tmp_path / "run.json").write_text(content)
    assert usercode.recorded_folders(tmp_path) == []
    assert usercode.recorded_folders(tmp_path / "missing") == []


def test_a_module_that_is_not_there_is_named_with_where_it_was_looked_for(tmp_path: Path, clean: Path) -> None:
    with pytest.raises(ImportError) as e:
        usercode.resolve("proj_absent:fit", tmp_path)
    assert "no module 'proj_absent'" in str(e.value) and str(tmp_path.resolve()) in str(e.value)
    with pytest.raises(ImportError, match="must be 'package.module:function'"):
        usercode.resolve("no colon", tmp_path)
