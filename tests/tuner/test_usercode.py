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


def test_a_file_name_for_a_module_is_told_to_drop_its_py(tmp_path: Path, clean: Path) -> None:
    with pytest.raises(ImportError, match=r"drop the '\.py': proj_absent:fit"):
        usercode.resolve("proj_absent.py:fit", tmp_path)
    with pytest.raises(ImportError, match=r"drop the '\.py' and write the module's dotted path: pkg\.proj:fit"):
        usercode.check_ref("pkg/proj.py:fit")


# -- a module beside the user's code that hides one Python or tuner imports --------------------

FIT = "def fit(config, run):\n    run.report({'score': 1.0})\n"


def shadow_project(tmp_path: Path, *files: str) -> Path:
    """A project folder with ``proj_train.py`` (the trial function), a sweep file of it and
    ``files`` (``name.py`` a module, ``name/`` a namespace folder, ``name/__init__.py`` a
    package); returns the sweep file."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "proj_train.py").write_text(FIT)
    for name in files:
        path = project / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("raise RuntimeError('the user module was imported')\n")
    sweep = project / "sweep.yaml"
    sweep.write_text(
        "metric: score\nmode: max\nfunction: proj_train:fit\nconfig: {lr: 0.1}\n"
        "search: {num_samples: 2, parameters: {lr: {values: [0.1, 0.2]}}}\n"
        "scheduler: {name: asha, max_t: 2, grace_period: 1}\n"
    )
    return sweep


@pytest.mark.parametrize(
    ("files", "module", "kind"),
    [
        (["json.py"], "json", "standard-library"),
        (["random.py"], "random", "standard-library"),
        (["yaml.py"], "yaml", "installed"),  # a dependency of tuner's
        (["ray.py"], "ray", "installed"),
        (["msgpack.py"], "msgpack", "installed"),  # a dependency of a dependency (Ray's)
        (["tuner.py"], "tuner", "installed"),  # tuner itself, which every Ray worker imports
        (["numpy/__init__.py"], "numpy", "installed"),  # a package
        (["google.py"], "google", "installed"),  # the namespace package protobuf lives in
        (["google/protobuf/"], "google", "installed"),  # a namespace folder merged into it, hiding protobuf
    ],
)
def test_a_module_that_shadows_one_python_or_tuner_needs_is_refused_up_front(
    tmp_path: Path, clean: Path, files: list[str], module: str, kind: str
) -> None:
    from tuner.errors import InputError
    from tuner.spec import load_sweep

    sweep = shadow_project(tmp_path, *files)
    with pytest.raises(InputError) as e:
        load_sweep(sweep)
    (line,) = e.value.problems
    path = sweep.parent.resolve() / files[0].split("/")[0]
    assert line == (
        f"{sweep}: {path}: shadows the {kind} module {module} (the folder comes first on sys.path, here and on "
        "every Ray worker, so Python imports it instead): rename it"
    )
    assert "proj_train" not in sys.modules  # the user's code is not imported beside it


def test_validate_try_and_run_refuse_a_shadowing_module_with_exit_2_before_anything_starts(
    tmp_path: Path, clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    from tests.conftest import ROOT
    from tuner.cli import main

    sweep = shadow_project(tmp_path, "json.py")
    storage = tmp_path / "runs"
    for argv in (["validate", str(sweep)], ["try", str(sweep)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and "json.py: shadows the standard-library module json" in err and "rename it" in err
        )
    # run in its own process: importing the runner imports Ray, which this test process leaves alone
    code = "import sys; from tuner.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "run", str(sweep), "--storage", str(storage)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "json.py: shadows the standard-library module json" in proc.stderr and proc.stdout == ""
    assert not storage.exists()


def test_resume_refuses_a_shadowing_module_beside_the_code_the_run_started_from(tmp_path: Path, clean: Path) -> None:
    """Resume validates the run's sweep with the folder its sweep file was in (from_dict)."""
    from tuner.errors import InputError
    from tuner.spec import from_dict, load_sweep

    sweep = shadow_project(tmp_path)
    raw = load_sweep(sweep).to_dict()
    (sweep.parent / "yaml.py").write_text("")  # appears after the run started
    with pytest.raises(InputError, match=r"yaml\.py: shadows the installed module yaml"):
        from_dict(raw, source="runs/x/sweep.yaml", base_dir=sweep.parent)


@pytest.mark.parametrize(
    "files",
    [
        ["models.py"],  # docs/functions.md: the user's models is theirs
        ["models/__init__.py", "models/nets.py"],
        ["train.py", "data.py", "utils.py", "helpers.py", "test.py", "config.py"],  # nothing installed by these names
        ["yaml/", "json/"],  # folders without __init__.py: the installed module wins over them
        ["google/"],  # merged into the installed namespace package, holding nothing of it
        ["not-a-module.py", "2x.py", ".hidden.py"],  # no import finds these
    ],
)
def test_names_that_hide_nothing_are_left_alone(tmp_path: Path, clean: Path, files: list[str]) -> None:
    from tuner.spec import load_sweep

    sweep = shadow_project(tmp_path, *files)
    assert usercode.shadowing(["proj_train:fit"], sweep.parent) == []
    assert load_sweep(sweep).function == "proj_train:fit"


def test_the_installed_tuner_run_from_its_own_checkout_shadows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)  # its tuner/ and models/ are what is installed (editable)
    assert usercode.shadowing(["tuner.models.train:fit"], ROOT / "examples" / "regression") == []
    assert usercode.shadowing(["tuner.models.train:fit"], ROOT) == []


def test_the_folder_of_a_module_found_in_the_current_folder_is_looked_through(tmp_path: Path, clean: Path) -> None:
    (clean / "proj_train.py").write_text(FIT)
    (clean / "yaml.py").write_text("")
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    assert usercode.shadowing(["proj_train:fit"], sweeps) == [(clean.resolve() / "yaml.py", "yaml", "installed")]
    assert usercode.shadowing([], sweeps) == []  # the current folder alone is not shipped


def test_the_dependency_names_are_tuners_closure_and_cost_nothing_for_a_users_own_names(
    tmp_path: Path, clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = usercode._dependency_modules()
    assert {"ray", "torch", "numpy", "yaml", "optuna", "msgpack", "google", "sklearn", "tuner"} <= names
    assert "models" not in names
    usercode._dependency_modules.cache_clear()  # a project of the user's own names never walks the packages

    def walk() -> frozenset[str]:
        raise AssertionError("the installed packages were walked")

    monkeypatch.setattr(usercode, "_dependency_modules", walk)
    # names of the user's own (not `train`: an earlier test may have put a folder with one on sys.path)
    sweep = shadow_project(tmp_path, "proj_helpers.py", "models.py", "json.py")
    assert [m for _, m, _ in usercode.shadowing(["proj_train:fit"], sweep.parent)] == ["json"]
