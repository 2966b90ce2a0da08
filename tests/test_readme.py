"""The README is what a new user meets first: its Quick start is what CI runs, its shell examples
run as shown, and every file and page it (or a docs page) names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start() -> list[str]:
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", README, re.S)
    assert block, "README has no Quick start block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    commands = quick_start()
    assert len(commands) == 2
    assert "tuner run sweeps/quickstart.yaml" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


def console_examples() -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of the README's console blocks with the lines it shows."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


@pytest.mark.parametrize("command, shown", console_examples(), ids=lambda x: x if isinstance(x, str) else "")
def test_a_readme_shell_example_prints_what_the_readme_shows(command: str, shown: list[str]) -> None:
    assert command.startswith("tuner ")
    args = command.split()[1:]
    proc = subprocess.run([sys.executable, "-m", "tuner", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    printed = (proc.stdout + proc.stderr).splitlines()
    assert printed == shown, (
        f"{command}: the README shows\n" + "\n".join(shown) + "\nbut it prints\n" + "\n".join(printed)
    )


def named_paths(text: str) -> set[str]:
    """Files and folders a page names: Markdown link targets and `path/like/this.ext` code spans."""
    links = {m for m in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in m}
    spans = {
        m for m in re.findall(r"`((?:sweeps|docs|examples|benchmarks|tests|tuner|models|scripts)/[\w./-]+)`", text)
    }
    return links | spans


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_every_file_a_page_names_exists(page: str) -> None:
    base = (ROOT / page).parent
    missing = sorted(
        p
        for p in named_paths((ROOT / page).read_text(encoding="utf-8"))
        if not (base / p).exists() and not (ROOT / p).exists() and "*" not in p and "<" not in p
    )
    assert missing == [], f"{page} names files that do not exist: {missing}"


def test_the_readme_stays_a_first_screen_and_its_commands_are_the_parsers() -> None:
    assert len(README.splitlines()) < 200  # details live in docs/
    from tuner.cli.parser import build_parser

    commands = set(re.findall(r"^tuner (\w+)", README, re.M)) - {"--version"}
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert commands <= set(sub.choices), commands - set(sub.choices)
    assert Path(ROOT / "docs" / "sweep-file.md").is_file()


def shown_sweeps(text: str) -> list[tuple[str, str]]:
    """Each YAML block of a page that names the sweep file it shows on its first line
    (``# sweeps/NAME.yaml``, abridged or not): (that path, the block)."""
    return re.findall(r"```yaml\n# ((?:sweeps|examples)/[\w./-]+\.yaml)[^\n]*\n(.*?)```", text, re.S)


def _differences(shown: Any, real: Any, where: str = "") -> list[str]:
    """Where a value ``shown`` (a mapping may leave keys out) is not the file's ``real`` one."""
    if isinstance(shown, dict) and isinstance(real, dict):
        out = []
        for key, value in shown.items():
            if key not in real:
                out.append(f"{where}{key}: not in the file")
            else:
                out.extend(_differences(value, real[key], f"{where}{key}."))
        return out
    return [] if shown == real else [f"{where.rstrip('.')}: shown {shown!r}, the file has {real!r}"]


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_a_sweep_a_page_shows_is_the_file_it_names(page: str) -> None:
    import yaml

    for path, block in shown_sweeps((ROOT / page).read_text(encoding="utf-8")):
        real = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
        assert _differences(yaml.safe_load(block), real) == [], f"{page} shows {path} otherwise than it is"


def test_a_shown_sweep_that_differs_from_its_file_is_found() -> None:
    shown = {"scheduler": {"grace_period": 2}, "model": {"hidden": [1]}, "extra": 1}
    real = {"scheduler": {"name": "asha", "grace_period": 1}, "model": {"hidden": [1]}}
    assert _differences(shown, real) == ["scheduler.grace_period: shown 2, the file has 1", "extra: not in the file"]
    assert shown_sweeps("```yaml\n# sweeps/a.yaml (abridged)\nname: a\n```") == [("sweeps/a.yaml", "name: a\n")]
