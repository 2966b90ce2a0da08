"""Hostile inputs a probe found after issue 10 (ninth session): each once gave a traceback, a
hang, a second console line, or overwrote what the command read; now one line and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs, make_run, write_export
from tuner.cli import main
from tuner.errors import InputError, printable
from tuner.files import read_bytes
from tuner.outputs import check_not_input, expand_user
from tuner.ray.joining import check_address
from tuner.retesting import fresh_seeds, parse_duration


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def _run(tmp_path: Path) -> Path:
    return make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7))])


def test_an_o_that_is_a_file_of_the_run_it_reads_is_refused_and_the_run_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path)
    before = (run / "run.json").read_bytes()
    assert main(["export", str(run), "-o", str(run / "run.json")]) == 2
    (line,) = _err(capsys)
    assert line.startswith(f"-o: {run / 'run.json'}: would overwrite a file of {run}")
    assert (run / "run.json").read_bytes() == before
    # a new file in the run directory is fine
    assert main(["export", str(run), "-o", str(run / "copy.yaml")]) == 0
    assert (run / "copy.yaml").is_file()


def test_train_refuses_to_write_its_model_over_the_export_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    export = write_export(_run(tmp_path))
    text = export.read_text()
    monkeypatch.chdir(export.parent)  # and back after the test
    assert main(["train", "best.yaml", "-o", "./best.yaml"]) == 2
    (line,) = _err(capsys)
    assert line == "-o: ./best.yaml: is the file this command reads; write elsewhere"
    assert export.read_text() == text


def test_check_not_input_skips_uris_and_new_files(tmp_path: Path) -> None:
    check_not_input(tmp_path / "new.yaml", [tmp_path])
    check_not_input(tmp_path / "x.yaml", ["s3://bucket/run"])
    (tmp_path / "a").mkdir()
    check_not_input(tmp_path / "a", [tmp_path])  # a folder is not a file the run holds


def test_a_home_of_no_user_is_one_line_not_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match=r"^-o: ~nosuchuser-tuner/x.yaml: ~nosuchuser-tuner is no user's home"):
        expand_user("~nosuchuser-tuner/x.yaml", "-o")
    run = _run(tmp_path)
    assert main(["export", str(run), "-o", "~nosuchuser-tuner/x.yaml"]) == 2
    assert main(["report", str(run), "-o", "~nosuchuser-tuner/r"]) == 2
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep()))
    assert main(["run", str(sweep), "--storage", "~nosuchuser-tuner/runs"]) == 2
    lines = _err(capsys)
    assert len(lines) == 3 and all("is no user's home on this system" in line for line in lines)


def test_a_pipe_given_as_a_file_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(InputError, match="is not a regular file"):
        read_bytes(fifo)
    for argv in (
        ["validate", str(fifo)],
        ["space", str(fifo), "-n", "2"],
        ["train", str(fifo), "-o", str(tmp_path / "m.pt")],
    ):
        assert main(argv) == 2
        (line,) = _err(capsys)
        assert line == f"{fifo}: is not a regular file (a pipe, a socket or a device)"


def test_names_with_control_characters_print_as_escapes_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert printable("plain name é") == "plain name é"
    assert printable("a\nFAKE: ok\x1b[2K\u202e") == "a\\nFAKE: ok\\x1b[2K\\u202e"
    name = tmp_path / "evil\nFAKE: all good\x1b[2K.yaml"
    assert main(["validate", str(name)]) == 2
    (line,) = _err(capsys)
    assert "\\nFAKE: all good\\x1b[2K" in line and "\x1b" not in line


@pytest.mark.parametrize("text", ["", "99999999999d", "366d", "0s", "1y", "-1s"])
def test_every_must_be_a_positive_duration_of_at_most_a_year(text: str) -> None:
    with pytest.raises(InputError, match="^--every: .* at most 365d$"):
        parse_duration(text)
    assert parse_duration("365d") == 365 * 86400 and parse_duration("1.5m") == 90


def test_retest_seeds_are_capped_and_drawn_in_linear_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = write_export(_run(tmp_path))
    assert main(["retest", str(export), "--seeds", "100000"]) == 2
    assert "must be <= 1000" in capsys.readouterr().err
    assert main(["retest", str(export), "--every", ""]) == 2  # was taken as no --every at all
    seeds = fresh_seeds(50_000, avoid={1, 2, 3})  # a list scan per draw took minutes
    assert len(set(seeds)) == 50_000 and not {1, 2, 3} & set(seeds)


@pytest.mark.parametrize("address", ["1.2.3.4:99999", "h:0", "ray://h:70000"])
def test_an_address_with_a_port_out_of_range_is_refused(address: str) -> None:
    with pytest.raises(InputError, match="a port is 1 to 65535"):
        check_address(address)
    assert check_address("h:65535") == "h:65535" and check_address("ray://[::1]:10001") == "ray://[::1]:10001"


def test_networks_too_large_to_build_and_grids_too_large_to_run_fail_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tiny_sweep()
    sweep["model"]["hidden"] = [1_000_000, 1_000_000]
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(sweep))
    assert main(["validate", str(tmp_path / "big.yaml")]) == 2
    assert "model.hidden: [1000000, 1000000] must hold at most 200,000,000 weights" in _err(capsys)[0]
    sweep = tiny_sweep()
    sweep["search"]["parameters"]["model.hidden"] = {"values": [[16], [100000, 100000, 100000]]}
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(sweep))
    assert main(["validate", str(tmp_path / "values.yaml")]) == 2
    assert "model.hidden.values[1]" in _err(capsys)[0]
    sweep = tiny_sweep()
    sweep["search"] = {
        "method": "grid",
        "parameters": {
            k: {"distribution": "uniform", "min": 0.1, "max": 0.9, "grid_points": 10_000}
            for k in ("train.lr", "train.momentum")
        },
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(sweep))
    assert main(["validate", str(tmp_path / "grid.yaml")]) == 2
    assert "make a grid of more than 1,000,000 trials" in _err(capsys)[0]
    sweep["search"]["parameters"]["train.lr"]["grid_points"] = 100
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(sweep))
    assert main(["validate", str(tmp_path / "grid.yaml")]) == 0


def test_a_file_of_too_many_plain_values_is_not_called_an_alias_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner import files

    monkeypatch.setattr(files, "MAX_YAML_NODES", 1000)  # the rule, not PyYAML's time on 200,000 values
    plain = "".join(f"k{i}: {i}\n" for i in range(501))
    with pytest.raises(InputError, match="^s.yaml: holds more than 1000 values: refused$"):
        files.load_yaml(plain, "s.yaml")
    bomb = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abc", "bcd")
    )
    with pytest.raises(InputError, match="alias bomb"):
        files.load_yaml(bomb, "s.yaml")
    assert files.load_yaml("".join(f"k{i}: {i}\n" for i in range(400)), "s.yaml")["k399"] == 399


def test_space_takes_every_seed_a_sweep_file_may_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_sweep()))
    assert main(["space", str(tmp_path / "s.yaml"), "-n", "1", "--seed", str(2**32 - 1)]) == 0
    assert main(["space", str(tmp_path / "s.yaml"), "-n", "1", "--seed", str(2**32)]) == 2


def test_a_data_path_that_is_a_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tiny_sweep()
    sweep["data"] = {"name": "npz", "path": str(tmp_path)}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    (line,) = _err(capsys)
    assert line.endswith("is a folder, not a data file") and "no such file" not in line


def test_an_npz_of_python_objects_is_refused_without_numpys_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    import numpy as np

    from tuner.models.data import DataError
    from tuner.models.sources import npz

    arrays = {k: np.zeros(2) for k in ("y_train", "x_test", "y_test")}
    np.savez(tmp_path / "d.npz", x_train=np.array([{"a": 1}, None], dtype=object), **arrays)
    with pytest.raises(DataError, match=r"holds Python objects \(a pickle\), which are never loaded") as e:
        npz(tmp_path / "d.npz")
    assert "allow_pickle" not in str(e.value)


@pytest.mark.parametrize("bound", [1e308, float("inf"), float("nan")])
def test_a_rounds_range_beyond_what_a_sweep_file_may_hold_is_refused_when_read_back(bound: float) -> None:
    from tuner.space import Parameter

    with pytest.raises(ValueError, match=r"min and max must be finite numbers within \+-1e\+300"):
        Parameter.from_dict("train.lr", {"distribution": "uniform", "min": -bound, "max": bound})
    assert Parameter.from_dict("train.lr", {"distribution": "uniform", "min": -1e300, "max": 1e300}).high == 1e300


def test_a_report_of_a_round_over_the_widest_range_a_sweep_may_hold_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    from tuner.report import write_report

    wide = {"train.lr": {"distribution": "uniform", "min": -1e300, "max": 1e300}}
    run = make_run(
        tmp_path,
        [({"train.lr": 1e299}, epochs(0.5, 0.6, 0.7)), ({"train.lr": -1e299}, epochs(0.4, 0.5, 0.6))],
        rounds=[wide],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's overflow warnings would reach the console
        assert write_report(run).is_file()


def test_an_exports_warning_escapes_the_names_it_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.errors import warn_stderr

    warn_stderr("run/trial\nFAKE\x1b[2K/params.json: bad: left out of the export")
    (line,) = _err(capsys)
    assert line == "warning: run/trial\\nFAKE\\x1b[2K/params.json: bad: left out of the export"
