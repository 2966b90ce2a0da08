"""The arguments of the command line and the Python API: one set of rules, one line naming
the argument (the flag on the command line, the parameter in Python), nothing started."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pytest

import tuner
from tuner import arguments
from tuner.cli import main
from tuner.errors import InputError


def _problem(call: Any) -> str:
    with pytest.raises(InputError) as e:
        call()
    (line,) = e.value.problems
    return line


def test_an_integer_is_an_int_and_not_a_bool_within_its_bounds() -> None:
    assert arguments.integer(3, "n", 1, 10) == 3
    assert _problem(lambda: arguments.integer("3", "n", 1)) == "n: '3' is not an integer"
    assert _problem(lambda: arguments.integer(True, "n", 1)) == "n: True is not an integer"
    assert _problem(lambda: arguments.integer(2.0, "n", 1)) == "n: 2.0 is not an integer"
    assert _problem(lambda: arguments.integer(None, "n", 1)) == "n: None is not an integer"
    assert _problem(lambda: arguments.integer(0, "n", 1)) == "n: 0 must be >= 1"
    assert _problem(lambda: arguments.integer(11, "n", 1, 10)) == "n: 11 must be <= 10"
    assert _problem(lambda: arguments.integer(10**10, "n", 1)) == "n: 10000000000 must be <= 1000000000"
    assert _problem(lambda: arguments.integer(1, "n", 2, why=" (two at least)")) == "n: 1 must be >= 2 (two at least)"
    assert arguments.optional_integer(None, "n", 1) is None


def test_a_number_is_finite_and_not_a_bool() -> None:
    assert arguments.number(1, "t", low=0) == 1.0 and isinstance(arguments.number(1, "t"), float)
    assert _problem(lambda: arguments.number(math.nan, "t")) == "t: nan must be a finite number"
    assert _problem(lambda: arguments.number(-0.5, "t", low=0)) == "t: -0.5 must be a finite number >= 0"
    assert _problem(lambda: arguments.number(10**400, "t")).endswith("must be a finite number")
    assert _problem(lambda: arguments.number(False, "t")) == "t: False is not a number"
    assert _problem(lambda: arguments.number("0.1", "t")) == "t: '0.1' is not a number"


def test_flags_texts_choices_paths_mappings_devices_and_functions() -> None:
    assert arguments.flag(False, "f") is False
    assert _problem(lambda: arguments.flag("no", "f")) == "f: 'no' must be True or False"
    assert _problem(lambda: arguments.flag(0, "f")) == "f: 0 must be True or False"
    assert arguments.text(None, "s") is None and arguments.text("a", "s") == "a"
    assert _problem(lambda: arguments.text(5, "s")) == "s: 5 must be a string"
    assert _problem(lambda: arguments.choice("xml", "fmt", ("yaml", "json"))) == "fmt: 'xml' is not one of yaml, json"
    assert arguments.path(Path("a"), "p") == Path("a") and arguments.path("a", "p") == "a"
    assert _problem(lambda: arguments.path(None, "p")) == "p: None must be a path (a str or a pathlib.Path)"
    assert _problem(lambda: arguments.path(b"a", "p")) == "p: b'a' must be a path (a str or a pathlib.Path)"
    assert _problem(lambda: arguments.path(" ", "p")) == "p: ' ' is not a path"
    assert arguments.mapping(None, "d") is None and arguments.mapping({"a": 1}, "d") == {"a": 1}
    assert (
        _problem(lambda: arguments.mapping([1], "d", " (e.g. {})"))
        == "d: [1] must be a mapping of keys to values (e.g. {})"
    )
    assert _problem(lambda: arguments.mapping({1: 2}, "d")) == "d: key 1: a key must be a string"
    assert arguments.device(None, "device") is None and arguments.device("cuda", "device") == "cuda"
    assert _problem(lambda: arguments.device(3, "device")) == "device: 3 must be 'cpu', 'cuda' or a torch.device"
    assert arguments.function(print, "write") is print
    assert _problem(lambda: arguments.function("print", "write")) == "write: 'print' must be a function (such as print)"


def test_a_torch_device_is_a_device() -> None:
    import torch

    assert arguments.device(torch.device("cpu"), "device") == torch.device("cpu")


def test_the_command_lines_parsers_say_what_they_said() -> None:
    parse = arguments.parse_integer(2, 1000)
    assert parse("5") == 5
    for text, message in (("x", "'x' is not an integer"), ("1", "1 must be >= 2"), ("1001", "1001 must be <= 1000")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
    assert arguments.parse_number("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="'inf' must be a finite number"):
        arguments.parse_number("inf")
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not a number"):
        arguments.parse_number("x")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["retest", "e.yaml", "--seeds", "1001"], "tuner retest: argument --seeds: 1001 must be <= 1000"),
        (["retest", "e.yaml", "--seeds", "x"], "tuner retest: argument --seeds: 'x' is not an integer"),
        (["run", "s.yaml", "--num-cpus", "0"], "tuner run: argument --num-cpus: 0 must be >= 1"),
        (["export", "r", "--top-k", "2.5"], "tuner export: argument --top-k: '2.5' is not an integer"),
        (
            ["retest", "e.yaml", "--tolerance", "nan"],
            "tuner retest: argument --tolerance: 'nan' must be a finite number",
        ),
    ],
)
def test_the_command_line_names_the_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"{message} (see tuner {argv[0]} --help)"


EXPORT = "absent/best.yaml"  # never read: every argument is checked first


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tuner.retest(EXPORT, data="digits"), "data: 'digits' must be a mapping of keys to values"),
        (lambda: tuner.retest(EXPORT, data=[1, 2]), "data: [1, 2] must be a mapping of keys to values"),
        (lambda: tuner.retest(EXPORT, seeds="3"), "seeds: '3' is not an integer"),
        (lambda: tuner.retest(EXPORT, seeds=10**7), "seeds: 10000000 must be <= 1000"),
        (lambda: tuner.retest(EXPORT, seeds=1), "seeds: 1 must be >= 2 (a confidence interval needs two seeds)"),
        (lambda: tuner.retest(EXPORT, top_k=0), "top_k: 0 must be >= 1"),
        (lambda: tuner.retest(EXPORT, tolerance=math.inf), "tolerance: inf must be a finite number >= 0"),
        (lambda: tuner.retest(None), "export_path: None must be a path"),
        (lambda: tuner.evaluate("m.pt", data="x"), "data: 'x' must be a mapping of keys to values"),
        (lambda: tuner.evaluate("m.pt", device=3), "device: 3 must be 'cpu', 'cuda' or a torch.device"),
        (lambda: tuner.evaluate("m.pt", trust_code="no"), "trust_code: 'no' must be True or False"),
        (lambda: tuner.load_model("m.pt", device=5), "device: 5 must be 'cpu', 'cuda' or a torch.device"),
        (lambda: tuner.load_model("m.pt", trust_code="no"), "trust_code: 'no' must be True or False"),
        (lambda: tuner.load_model(None), "path: None must be a path"),
        (lambda: tuner.train(EXPORT, "m.pt", data="x"), "data: 'x' must be a mapping of keys to values"),
        (lambda: tuner.train(EXPORT, None), "output: None must be a path"),
        (lambda: tuner.export("r", output="x.yaml", top_k="3"), "top_k: '3' is not an integer"),
        (lambda: tuner.export("r", output="x.yaml", top_k=2.5), "top_k: 2.5 is not an integer"),
        (lambda: tuner.export("r", output="x.yaml", top_k=0), "top_k: 0 must be >= 1"),
        (lambda: tuner.export("r", fmt="xml"), "fmt: 'xml' is not one of yaml, json"),
        (lambda: tuner.export(None), "run_dir: None must be a path"),
        (lambda: tuner.try_trial("s.yaml", epochs="2"), "epochs: '2' is not an integer"),
        (lambda: tuner.try_trial("s.yaml", epochs=0), "epochs: 0 must be >= 1"),
        (
            lambda: tuner.try_trial([1, 2]),
            "sweep: [1, 2] must be a sweep file's path, a mapping in its form or a Sweep",
        ),
        (lambda: tuner.try_trial({1: 2}), "sweep: key 1: a key must be a string"),
        (lambda: tuner.run("s.yaml", overrides=[1]), "overrides: [1] must be a mapping of keys to values"),
        (lambda: tuner.run("s.yaml", num_cpus="x"), "num_cpus: 'x' is not an integer"),
        (lambda: tuner.run("s.yaml", num_cpus=-1), "num_cpus: -1 must be >= 1"),
        (lambda: tuner.run("s.yaml", num_samples=0), "num_samples: 0 must be >= 1"),
        (lambda: tuner.run("s.yaml", name=5), "name: 5 must be a string"),
        (lambda: tuner.run("s.yaml", storage=None), "storage: None must be a path"),
        (lambda: tuner.run("s.yaml", quiet="yes"), "quiet: 'yes' must be True or False"),
        (lambda: tuner.resume("r", num_cpus=0), "num_cpus: 0 must be >= 1"),
        (lambda: tuner.load_run(123), "run_dir: 123 must be a path"),
        (lambda: tuner.load_run("r", per=None), "per: None is not one of trial, epoch"),
        (lambda: tuner.load_best(5), "path: 5 must be a path"),
        (lambda: tuner.load_sweep(None), "path: None must be a path"),
    ],
)
def test_the_apis_arguments_are_checked_before_anything_naming_the_parameter(
    call: Any, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _problem(call).startswith(message)
    assert list(tmp_path.iterdir()) == []  # nothing read (none of the files exists) and nothing written
