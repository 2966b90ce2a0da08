"""pandas, Ray Data, ``requests`` and ``jsonschema`` deferred to their first use
(:mod:`tuner.ray.deferred`): Ray's and Ray Tune's imports and a whole run leave them unloaded,
and whoever uses them gets the real modules:
through an attribute, a ``from`` import, a submodule, from two threads at once, in a trial
process of tuner's own instance. Ray Tune's three module bodies that read them get their
stand-ins, and Ray's source is checked for the one stand-in that stays bound."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, tiny_function_sweep
from tuner.ray import deferred


def _python(*parts: str) -> dict[str, Any]:
    """Run the code ``parts`` (each dedented) in a fresh interpreter; it prints one JSON object last."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_RAY_TUNE_IMPORTED = """
    import inspect, json, sys, types
    DEFERRED = {deferred}
    {hook}
    import tuner.ray.experiment, tuner.ray.worker  # Ray Tune, the driver's side and the trial's
    def state(name):
        m = sys.modules.get(name)
        return "absent" if m is None else ("deferred" if type(m).__name__ == "_Deferred" else "loaded")
    out = {{"after_import": {{n: state(n) for n in DEFERRED}}}}
"""


def test_without_the_hook_ray_tunes_import_loads_all_four() -> None:
    """The control: what the hook saves is there to save (Ray 2.60 imports them all)."""
    out = _python(_RAY_TUNE_IMPORTED.format(hook="", deferred=deferred.DEFERRED), "print(json.dumps(out))")
    assert out["after_import"] == dict.fromkeys(deferred.DEFERRED, "loaded")
    assert set(deferred.DEFERRED) == {"pandas", "ray.data", "requests", "jsonschema"}


def test_ray_tunes_import_leaves_them_deferred_and_their_first_use_loads_them() -> None:
    out = _python(
        _RAY_TUNE_IMPORTED.format(hook="import tuner.ray.deferred", deferred=deferred.DEFERRED),
        """
    pandas = sys.modules["pandas"]
    inspect.getmodule(state)  # walks sys.modules, reading each one's __file__: no load
    out["quiet"] = [isinstance(pandas, types.ModuleType), pandas.__name__, pandas.__file__.endswith("__init__.py"),
                    state("pandas")]
    # the stand-ins Ray Tune's bodies were given
    import ray.tune.analysis.experiment_analysis as ea
    out["frame"] = type(ea.DataFrame()).__module__  # the function that calls pandas': a real frame
    import pandas as pd
    from pandas import Series
    import pandas.api.types as types_
    out["used"] = [state("pandas"), int(pd.DataFrame({"a": [1, 2]})["a"].sum()), Series([1.5]).dtype.name,
                   types_.is_numeric_dtype(Series([1]))]
    import ray
    out["data"] = [state("ray.data"), callable(ray.data.range), state("ray.data")]
    from ray.tune.result_grid import ResultGrid
    out["annotation"] = ResultGrid.get_dataframe.__annotations__["return"] is not None
    import jsonschema
    from requests.exceptions import RequestException  # a submodule: requests' body runs first
    out["web"] = [state("requests"), issubclass(RequestException, OSError), state("jsonschema")]
    jsonschema.validate(1, {"type": "integer"})  # as Ray's runtime environment checks use it
    out["web"].append(state("jsonschema"))
    print(json.dumps(out))
    """,
    )
    assert out["after_import"] == dict.fromkeys(deferred.DEFERRED, "deferred")
    assert out["quiet"] == [True, "pandas", True, "deferred"]
    assert out["frame"].startswith("pandas")
    assert out["used"] == ["loaded", 3, "float64", True]
    assert out["data"] == ["deferred", True, "loaded"]
    assert out["web"] == ["loaded", True, "deferred", "loaded"]


def test_the_command_installs_the_hook_before_it_imports_its_modules() -> None:
    """``tuner``'s entry point imports the hook first: a hook installed after a module that
    imports pandas would find it loaded already."""
    spy = """
    import json, sys
    class Spy:
        def find_spec(self, name, path, target=None):
            if name in ("tuner.streams", "tuner.cli"):
                print(json.dumps({name: "tuner.ray.deferred" in sys.modules}), flush=True)
    sys.meta_path.insert(0, Spy())
    sys.argv = ["tuner", "--help"]
    from tuner.__main__ import entry
    entry()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(spy)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    seen = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"tuner.')]
    assert done.returncode == 0 and seen == [{"tuner.streams": True}, {"tuner.cli": True}], done.stderr


# -- the hook itself, on a package of the test's own ----------------------------------------


@pytest.fixture
def slow_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``slowpkg`` whose body takes 0.2 s and counts its runs (in ``runs.txt``),
    with a submodule, deferred by a hook of this test's own (taken off after)."""
    pkg = tmp_path / "slowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import time\nfrom pathlib import Path\n"
        f"with open({str(tmp_path / 'runs.txt')!r}, 'a') as f:\n    f.write('run\\n')\n"
        "time.sleep(0.2)\nVALUE = 42\n"
    )
    (pkg / "sub.py").write_text("import slowpkg\nDOUBLE = slowpkg.VALUE * 2\n")
    (tmp_path / "broken.py").write_text("raise ValueError('broken at its first use')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(deferred, "DEFERRED", ("slowpkg", "broken"))
    finder = deferred._Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield str(tmp_path / "runs.txt")
    finally:
        sys.meta_path.remove(finder)
        for name in ("slowpkg", "slowpkg.sub", "broken"):
            sys.modules.pop(name, None)


def test_a_deferred_module_runs_its_body_once_on_its_first_use_and_not_on_what_tools_read(slow_package: str) -> None:
    import slowpkg  # type: ignore[import-not-found]

    assert not Path(slow_package).exists() and not deferred.loaded("slowpkg")
    assert slowpkg.__name__ == "slowpkg" and slowpkg.__file__.endswith("__init__.py")
    assert isinstance(slowpkg, types.ModuleType) and not Path(slow_package).exists()
    import slowpkg as again  # imported again: the import system reads __spec__ only

    assert again is slowpkg and not Path(slow_package).exists()
    assert slowpkg.VALUE == 42 and deferred.loaded("slowpkg")
    assert slowpkg.VALUE == 42 and Path(slow_package).read_text() == "run\n"
    assert slowpkg.__loader__.__class__.__name__ == "SourceFileLoader"  # the real loader, for tracebacks


def test_importing_a_submodule_runs_the_deferred_package_first(slow_package: str) -> None:
    from slowpkg.sub import DOUBLE  # type: ignore[import-not-found]

    assert DOUBLE == 84 and Path(slow_package).read_text() == "run\n"


def test_two_threads_using_a_deferred_module_at_once_both_see_it_whole(slow_package: str) -> None:
    import slowpkg

    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(getattr(slowpkg, "VALUE", None))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [42] * 4 and Path(slow_package).read_text() == "run\n"


def test_a_deferred_modules_error_comes_at_its_first_use(slow_package: str) -> None:
    import broken  # type: ignore[import-not-found]

    with pytest.raises(ValueError, match="broken at its first use"):
        broken.anything  # noqa: B018


def test_tunes_dataset_pickler_is_registered_only_once_ray_data_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[str] = []

    class Real:
        def __enter__(self) -> None:
            entered.append("real")

        def __exit__(self, *exc: object) -> None:
            entered.append("out")

    wrapped = deferred._while_data_loaded(Real)
    monkeypatch.setattr(deferred, "loaded", lambda name: False)
    with wrapped():
        pass
    assert entered == []
    monkeypatch.setattr(deferred, "loaded", lambda name: name == "ray.data")
    with wrapped():
        assert entered == ["real"]
    assert entered == ["real", "out"]


def test_ray_tune_only_calls_the_data_frame_stand_in_it_keeps() -> None:
    """``experiment_analysis`` keeps :func:`deferred._data_frame` as its ``DataFrame``: right
    only while Ray's module calls it or names it in an annotation, never ``isinstance`` or an
    attribute of it. Read in Ray's source, so an upgrade of Ray that does more fails here."""
    spec = importlib.util.find_spec("ray.tune.analysis.experiment_analysis")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            allowed.add(id(node.func))
        if isinstance(node, ast.arguments):
            for arg in node.args + node.kwonlyargs + node.posonlyargs:
                if arg.annotation is not None:
                    allowed |= {id(n) for n in ast.walk(arg.annotation)}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            allowed |= {id(n) for n in ast.walk(node.returns)}
        if isinstance(node, ast.AnnAssign):
            allowed |= {id(n) for n in ast.walk(node.annotation)}
    uses = [
        n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "DataFrame" and isinstance(n.ctx, ast.Load)
    ]
    assert uses and all(id(n) in allowed for n in uses), [n.lineno for n in uses if id(n) not in allowed]
    for reader in deferred.READERS:  # each reader is still a module of Ray Tune
        assert importlib.util.find_spec(reader) is not None, reader


# -- in the trial processes of tuner's own instance -----------------------------------------


@pytest.mark.usefixtures("ray_session")
def test_a_trial_process_starts_with_them_deferred_and_a_users_function_uses_pandas(tmp_path: Path) -> None:
    from tuner.runner import run_sweep
    from tuner.spec import load_sweep

    log = tmp_path / "calls.jsonl"
    raw = tiny_function_sweep(
        "tests.fixtures_data:user_fit_with_pandas",
        name="pandas_fn",
        config={"log": str(log)},
        search={"method": "random", "num_samples": 2, "seed": 0, "parameters": {}},
        scheduler={"name": "none"},
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    summary = run_sweep(load_sweep(path), storage=tmp_path / "runs", write=lambda line: None)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2
    for call in calls:
        assert call["loaded"] == dict.fromkeys(deferred.DEFERRED, False) and call["numeric"] is True
    (best, *_) = summary.run.ranked()  # what pandas computed, as numpy computes it
    assert best.score("val_acc") == pytest.approx(best.score("numpy_mean"))
