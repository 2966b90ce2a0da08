"""The HTML report: its sections, figures and error paths on hand-written runs, and the page
as headless Chromium renders it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from tests.tuner.fake_run import epochs, make_run, retest_section, write_export
from tuner import report as report_mod
from tuner.cli import main
from tuner.report import write_report

LR = {"distribution": "log_uniform", "min": 1e-3, "max": 0.5}
MOMENTUM = {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99}
HIDDEN = {"values": [[8], [16]]}


def mixed_run(tmp_path: Path, **kwargs: Any) -> Path:
    """Two rounds; finished, stopped, diverged and failed trials; a categorical parameter."""
    params = {"train.lr": LR, "train.momentum": MOMENTUM, "model.hidden": HIDDEN}
    narrow = {
        "train.lr": {"distribution": "log_uniform", "min": 0.01, "max": 0.1},
        "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.8, "max": 0.95},
        "model.hidden": HIDDEN,
    }
    trials = [
        ({"train.lr": 0.05, "train.momentum": 0.9, "model.hidden": [16]}, epochs(0.5, 0.7, 0.8, 0.85)),
        ({"train.lr": 0.002, "train.momentum": 0.6, "model.hidden": [8]}, epochs(0.3)),
        ({"train.lr": 0.4, "train.momentum": 0.98, "model.hidden": [8]}, epochs(0.2, diverged_at=2)),
        ({"train.lr": 0.01, "train.momentum": 0.7, "model.hidden": [16]}, epochs(0.4, 0.5)),
        ({"train.lr": 0.03, "train.momentum": 0.85, "model.hidden": [16]}, epochs(0.6, 0.75, 0.8, 0.9)),
        ({"train.lr": 0.08, "train.momentum": 0.93, "model.hidden": [8]}, epochs(0.55)),
    ]
    return make_run(
        tmp_path,
        trials,
        epochs=4,
        error_for={3},
        rounds=[params, narrow],
        round_of=[0, 0, 0, 0, 1, 1],
        overrides={"search.parameters": params, "scheduler.grace_period": 1, "scheduler.reduction_factor": 2},
        **kwargs,
    )


def images(page: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page.read_text())


def test_the_report_of_a_two_round_run_with_a_retest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = mixed_run(tmp_path)
    write_export(run_dir, retest_section(["abcde_00004", "abcde_00000"], [{"train.lr": 0.03}, {"train.lr": 0.05}]))
    (run_dir / "best.retest.jsonl").write_text("{}\n{}\n")
    assert main(["report", str(run_dir)]) == 0
    page = run_dir / "report" / "index.html"
    assert capsys.readouterr().out.strip() == f"report: {page}"
    text = page.read_text()
    assert images(page) == ["lr.png", "beta.png", "curves.png", "parallel.png", "rounds.png", "retest.png"]
    for name in images(page):
        pixels = matplotlib.image.imread(page.parent / name)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.01, name
    # the summary: statuses, epochs against the full budget, the best, provenance
    assert "6 (1 diverged, 1 error, 2 finished, 2 stopped)" in text
    assert "epochs trained</td><td>14 of a full budget of 24 (6 × 4): 58%" in text
    assert "best score</td><td>0.9 (trial abcde_00004, round 1, finished, 4 epochs)" in text
    assert "train.lr=0.03, train.momentum=0.85, model.hidden=[16]" in text
    assert "ab" * 32 in text and "0123abc" in text and "cd" * 32 in text
    # ASHA's rungs (grace 1, η 2, 4 epochs) are named; the rounds are one row per round per numeric parameter
    assert "rung milestones at epoch 1, 2 of 4" in text
    assert "2 rounds" in text and "One round only" not in text
    for row in (
        "<td>0</td><td>train.lr</td><td>log_uniform</td><td>0.001</td><td>0.5</td><td>4</td>",
        "<td>1</td><td>train.momentum</td><td>one_minus_log_uniform</td><td>0.8</td><td>0.95</td><td>2</td>",
    ):
        assert row in text
    assert "<td>model.hidden</td>" not in text  # categorical: no range
    # the retest, with its intervals and history
    assert "No retest yet" not in text
    assert "3 seeds" in text and "ranking unchanged" in text and "2 retest(s) in best.retest.jsonl" in text
    assert "the best configuration held its rank" in text
    assert "0.8 ± 0.02 [0.77, 0.83]" in text


def test_one_round_and_no_export_say_so(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.01, "train.momentum": 0.6}, epochs(0.4)),
        ],
    )
    text = write_report(run_dir).read_text()
    assert "One round only (no refine rounds): the ranges are the sweep file" in text
    assert "No retest yet: there is no export (best.yaml)" in text
    write_export(run_dir)
    text = write_report(run_dir).read_text()
    assert "No retest yet (tuner retest" in text
    assert "rounds.png" not in text and "retest.png" not in text


def test_beta_not_searched_is_one_colour_and_said(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        [({"train.lr": 0.1}, epochs(0.5)), ({"train.lr": 0.01}, epochs(0.4))],
        overrides={"search.parameters": {"train.lr": LR}},
    )
    page = write_report(run_dir)
    text = page.read_text()
    assert "β (train.momentum) was not searched (fixed at 0.9): one colour." in text
    assert "β (train.momentum) was not searched: no 1 − β figure." in text
    assert images(page) == ["lr.png", "curves.png", "parallel.png"]


def test_adam_searches_beta1_and_lr_not_searched_is_said(tmp_path: Path) -> None:
    beta1 = {"distribution": "one_minus_log_uniform", "min": 0.8, "max": 0.999}
    run_dir = make_run(
        tmp_path,
        [({"train.beta1": 0.9}, epochs(0.5)), ({"train.beta1": 0.99}, epochs(0.6))],
        overrides={"train.optimizer": "adam", "search.parameters": {"train.beta1": beta1}},
    )
    page = write_report(run_dir)
    text = page.read_text()
    assert "train.lr was not searched (fixed at 0.05): no learning-rate figure." in text
    assert images(page) == ["beta.png", "curves.png", "parallel.png"]


def test_a_minimised_metric_with_infinite_values_still_draws(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.lr": 0.4, "train.momentum": 0.99}, epochs(0.5, diverged_at=2)),
        ],
        overrides={"metric": "val_loss", "mode": "min"},
    )
    page = write_report(run_dir)
    assert images(page) == ["lr.png", "beta.png", "curves.png", "parallel.png"]
    assert "best score</td><td>0.3 " in page.read_text()


def test_a_run_without_trials_gets_a_page_without_figures(tmp_path: Path) -> None:
    page = write_report(make_run(tmp_path, []))
    text = page.read_text()
    assert images(page) == [] and "No trial has reported a score yet" in text and "none yet" in text


def test_output_folder_and_figures_written_before_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = mixed_run(tmp_path)
    seen: list[bool] = []
    real = report_mod.write_text

    def check(path: Path, text: str) -> Path:
        seen.extend((Path(path).parent / src).is_file() for src in re.findall(r'<img src="([^"]+)"', text))
        return real(path, text)

    monkeypatch.setattr(report_mod, "write_text", check)
    out = tmp_path / "elsewhere" / "rep"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    assert (out / "index.html").is_file() and not (run_dir / "report").exists()
    assert seen and all(seen)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "{run}: no such run directory"),
        ("empty", "{run}: not a tuner run directory (no run.json / sweep.yaml)"),
        ("bad_json", "{run}/run.json:1:2: invalid JSON"),
        ("bad_meta", "{run}/run.json: name: is required"),
        ("bad_rounds", "{run}/run.json: rounds[0].parameters: train.lr.min: -1.0 must be > 0"),
        ("bad_export", "{run}/best.yaml:2:1: invalid YAML"),
        ("bad_retest", "{run}/best.yaml: retest.results: must be a list, not str"),
        ("bad_retest_stats", "{run}/best.yaml: retest.results[0].val: must be a mapping, not list"),
        ("output_is_file", "-o: {out}: exists and is not a folder"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, case: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    out = tmp_path / "out"
    if case == "empty":
        run_dir.mkdir()
    elif case != "missing":
        run_dir = make_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5))])
    if case == "bad_json":
        (run_dir / "run.json").write_text("{not json")
    elif case == "bad_meta":
        (run_dir / "run.json").write_text(json.dumps({"rounds": [{"index": 0}]}))
    elif case == "bad_rounds":
        meta = json.loads((run_dir / "run.json").read_text())
        meta["rounds"][0]["parameters"] = {"train.lr": {"distribution": "log_uniform", "min": -1, "max": 1}}
        (run_dir / "run.json").write_text(json.dumps(meta))
    elif case == "bad_export":
        (run_dir / "best.yaml").write_text("metric: [unclosed\n")
    elif case == "bad_retest":
        write_export(run_dir, {"results": "nope"})
    elif case == "bad_retest_stats":
        write_export(run_dir, {"results": [{"trial": "x", "params": {}, "val": [0.5]}]})
    elif case == "output_is_file":
        out.write_text("")
    assert main(["report", str(run_dir), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected.format(run=run_dir, out=out)), err
    assert not out.is_dir()


# -- the page in a browser --------------------------------------------------------------------------

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
# Appended to a copy of the page: after load, write whether each image decoded into the DOM.
CHECK_SCRIPT = """<script>window.addEventListener('load', function () {
  var out = document.createElement('pre'); out.id = 'img-check';
  out.textContent = Array.from(document.images).map(function (i) {
    return 'IMG ' + i.getAttribute('src') + ' ' + (i.complete && i.naturalWidth > 0 ? 'ok' : 'broken');
  }).join('\\n');
  document.body.appendChild(out); });</script>"""


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium (no network, no profile of the user's); returns its stdout."""
    assert CHROMIUM
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        *args,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # chromium's own children too
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return out


def rendered_images(tmp_path: Path, page: Path) -> dict[str, str]:
    check = page.with_name("check.html")
    check.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", check.as_uri())
    check.unlink()
    return dict(re.findall(r"IMG (\S+) (ok|broken)", dom))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_the_page_renders_in_headless_chromium_with_every_figure(tmp_path: Path) -> None:
    run_dir = mixed_run(tmp_path)
    write_export(run_dir, retest_section(["abcde_00004"], [{"train.lr": 0.03}]))
    page = write_report(run_dir)
    loaded = rendered_images(tmp_path, page)
    assert loaded == {name: "ok" for name in images(page)} and len(loaded) == 6
    # the check can fail: a figure that is not there is reported broken
    (page.parent / "curves.png").unlink()
    assert rendered_images(tmp_path, page)["curves.png"] == "broken"
    write_report(run_dir)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", page.as_uri())
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    colours = len({tuple(p) for p in (pixels[::7, ::7].reshape(-1, 3) * 255).astype(int).tolist()})
    assert not_white > 0.05 and colours > 50, (not_white, colours)


def test_the_report_of_a_real_sweep(tracked_run: dict[str, Any], tmp_path: Path) -> None:
    summary = tracked_run["summary"]
    page = write_report(summary.run_dir, tmp_path / "rep")
    text = page.read_text()
    assert images(page) == ["lr.png", "beta.png", "curves.png", "parallel.png"]
    assert "2 (2 finished)" in text and "4 of a full budget of 4" in text
    assert f"{summary.run.ranked()[0].score('val_acc'):.4g}" in text
    assert "no early stopping" in text and "One round only" in text and "No retest yet (tuner retest" in text
