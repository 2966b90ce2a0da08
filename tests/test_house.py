"""The house rules that keep the project livable: layers, one Ray boundary, nothing at import,
the contracts in docs/ generated from their one source."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import tomllib

from tests.conftest import ROOT


def imports(path: str) -> set[str]:
    """Every module a file imports (absolute names; relative imports as '.name')."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def sources(folder: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py"))


def test_the_sweep_file_reference_is_generated_from_the_schema() -> None:
    from tuner.spec.reference import reference

    assert (ROOT / "docs" / "sweep-file.md").read_text(encoding="utf-8") == reference(), (
        "docs/sweep-file.md is stale: python -m tuner.spec > docs/sweep-file.md"
    )


def test_every_touch_of_ray_is_in_tuner_ray() -> None:
    offenders = [
        p
        for p in sources("tuner") + sources("models")
        if not p.startswith("tuner/ray/") and any(m == "ray" or m.startswith("ray.") for m in imports(p))
    ]
    assert offenders == []


def test_models_imports_nothing_of_the_layers_above() -> None:
    offenders = {p: sorted(m for m in imports(p) if m.split(".")[0] == "tuner") for p in sources("models")}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_importing_tuner_changes_nothing_and_starts_nothing() -> None:
    code = (
        "import json, os, sys; before = dict(os.environ); import tuner, tuner.cli; "
        "print(json.dumps({'env': dict(os.environ) == before, 'ray': 'ray' in sys.modules, "
        "'torch': 'torch' in sys.modules, 'matplotlib': 'matplotlib' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == {"env": True, "ray": False, "torch": False, "matplotlib": False}


def test_every_package_is_installed() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "tuner." + str(p.parent.relative_to(ROOT / "tuner")).replace("/", ".")
        for p in (ROOT / "tuner").rglob("__init__.py")
        if p.parent != ROOT / "tuner"
    } | {"tuner", "tuner.models"}
    assert found == declared


def test_no_module_grows_past_its_size() -> None:
    sizes = {p: len((ROOT / p).read_text(encoding="utf-8").splitlines()) for p in sources("tuner") + sources("models")}
    assert {p: n for p, n in sizes.items() if n > 400 and p not in BEING_SPLIT} == {}


BEING_SPLIT: set[str] = set()  # modules being split into packages


def test_the_driver_of_a_run_never_imports_torch() -> None:
    """Seconds of a run's start: only the trials need torch (and `tuner validate`/`space` neither)."""
    code = (
        "import json, sys; import tuner.cli, tuner.runner, tuner.startup, tuner.rounds, tuner.ray.experiment, tuner.spec, "
        "tuner.datasets; print(json.dumps('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) is False
    # the TensorBoard writer a run makes (tensorboardX imports torch, and boto3 where it is
    # installed, if it can), and both still import afterwards in that process
    code = (
        "import json, sys; from tuner.ray.callbacks import EpochTensorBoard; EpochTensorBoard(); "
        "import tensorboardX; before = sorted(m for m in ('torch', 'boto3') if m in sys.modules); "
        "import torch, boto3; print(json.dumps([before, torch.tensor([1.0]).item(), boto3.__name__]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == [[], 1.0, "boto3"]
