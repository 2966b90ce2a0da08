"""The report as a whole: ``write_report`` and ``tuner report``, its page and error paths, the
page as headless Chromium renders it (with screenshots under benchmarks/out/report/ for people
to look at), and the report of one real sweep."""

from __future__ import annotations

import base64
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

import tuner.report as report_mod
from tests.conftest import ROOT
from tests.tuner.fake_run import epochs, retest_section, write_export
from tests.tuner.report.runs import function_run, mixed_run, write_run
from tuner import export_file
from tuner.cli import main
from tuner.report import build, write_report
from tuner.report.context import Context
from tuner.report.figure import render
from tuner.results import load_run

QUESTIONS = [
    "What was run, and what came out?",
    "Which parameters matter?",
    "Where is the good region?",
    "How did the search progress?",
    "What did ASHA do?",
    "Where did the time go?",
    "Does the best hold up on fresh seeds?",
    "How did refine rounds narrow the ranges?",
    "The top 10 trials",
    "Where did it come from?",
]
SHOTS = ROOT / "benchmarks" / "out" / "report"


def figures(page: Path) -> dict[str, bytes]:
    """Each embedded figure's file name and PNG bytes."""
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" data-file="([^"]+)"', page.read_text())
    return {name: base64.b64decode(data) for data, name in found}


def views(page: Path) -> list[str]:
    return re.findall(r'<figure class="view" data-view="([^"]+)"', page.read_text())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of a two-round run with every kind of trial and a retest, written once by
    ``tuner report RUN -o OUT``, noting which figures were on disk when the page was written."""
    root = tmp_path_factory.mktemp("mixed")
    run_dir = mixed_run(root)
    write_export(run_dir, retest_section(["abcde_00004", "abcde_00000"], [{"train.lr": 0.03}, {"train.lr": 0.05}]))
    (run_dir / "best.retest.jsonl").write_text("{}\n{}\n")
    seen: list[bool] = []
    real = report_mod.write_text

    def check(path: Path, text: str) -> Path:
        seen.extend((Path(path).parent / name).is_file() for name in re.findall(r'data-file="([^"]+)"', text))
        return real(path, text)

    out = root / "elsewhere" / "rep"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_mod, "write_text", check)
        assert main(["report", str(run_dir), "-o", str(out)]) == 0
    return {"run_dir": run_dir, "page": out / "index.html", "seen": seen}


@pytest.fixture(scope="module")
def mixed_page(mixed: dict[str, Any]) -> Path:
    return mixed["page"]  # type: ignore[no-any-return]


def test_the_page_answers_each_question_with_its_figures_embedded(mixed_page: Path) -> None:
    text = mixed_page.read_text()
    assert re.findall(r"<h2>([^<]+)</h2>", text) == [q.replace("'", "&#x27;") for q in QUESTIONS]
    embedded = figures(mixed_page)
    assert list(embedded) == ["region.png", "lr_beta.png", "progress.png", "asha.png", "curves.png",
                              "timeline.png", "retest.png", "rounds.png"]  # fmt: skip
    for name, data in embedded.items():
        assert (mixed_page.parent / name).read_bytes() == data, name  # the file beside is the same figure
    assert views(mixed_page) == ["scatter", "map", "parallel"]
    assert "No importance: too few trials at val_acc at epoch 1 (6; 8 needed)." in text
    # the summary, and the counts ASHA's section gives
    assert "6 (1 diverged, 1 error, 2 finished, 2 stopped)" in text
    assert "epochs trained</td><td>14 of a full budget of 24 (6 × 4): 58%" in text
    assert "best score</td><td>0.9 (trial abcde_00004, round 1, finished, 4 epochs)" in text
    assert "epoch 1: 4 of 6 promoted; epoch 2: 2 of 4 promoted" in text
    assert "6 trials ran 14.0 trial-seconds" in text
    assert "2 retest(s) in best.retest.jsonl" in text
    assert "ab" * 32 in text and "0123abc" in text


def test_the_page_is_one_offline_file(mixed_page: Path) -> None:
    text = mixed_page.read_text()
    assert text.count("<script>") >= 1 and text.count(report_mod.page.__name__) == 0
    assert re.search(r"<script[^>]+src=", text) is None and "<link" not in text
    markup = re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # plotly.js names links it never loads
    assert re.search(r'(src|href)="(https?:)?//', markup) is None and "url(" not in markup
    assert len(re.findall(r"Plotly\.newPlot", text)) == 3
    from tuner.report.interactive import plotly_js

    assert text.count(plotly_js()[:200]) == 1  # plotly.js embedded once
    assert 'http-equiv="refresh"' not in text  # a finished run: nothing to reload


def test_each_figure_file_is_the_drawn_figure(mixed: dict[str, Any]) -> None:
    """A figure swapped for anything else (a filled rectangle) between drawing and writing fails."""
    run_dir, page = mixed["run_dir"], mixed["page"]
    ctx = Context.of(load_run(run_dir), export_file.read(run_dir / "best.yaml"), page.parent)
    drawn = {d.name: d for s in build(ctx) for d in s.figures}
    for name in ("region.png", "curves.png", "timeline.png"):
        assert (page.parent / name).read_bytes() == render(drawn[name].figure), name


def test_figures_are_written_before_the_page_and_elsewhere_with_o(mixed: dict[str, Any]) -> None:
    page = mixed["page"]
    assert page.is_file() and not (mixed["run_dir"] / "report").exists()
    assert len(mixed["seen"]) == 8 and all(mixed["seen"])
    assert not [p for p in page.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_users_function_minimising_its_metric_gets_what_applies(tmp_path: Path, capsys: Any) -> None:
    run_dir = function_run(tmp_path)
    assert main(["report", str(run_dir)]) == 0
    page = run_dir / "report" / "index.html"
    assert capsys.readouterr().out.strip() == f"report: {page}"
    text = page.read_text()
    assert "No learning rate × (1 − β) map: this run did not search both" in text
    assert "No importance: too few trials at val_rmse at epoch 1 (4; 8 needed)." in text
    assert set(figures(page)) == {"region.png", "progress.png", "asha.png", "curves.png", "timeline.png"}
    assert views(page) == ["scatter", "parallel"]
    assert "best score</td><td>45 (trial abcde_00000" in text and "val_rmse (min)" in text


def test_a_run_without_trials_gets_a_page_without_figures(tmp_path: Path) -> None:
    page = write_report(write_run(tmp_path, []))
    text = page.read_text()
    assert figures(page) == {} and views(page) == []
    assert "No trial has reported a score yet" in text and "none yet" in text and "<script>" not in text


def test_the_page_reloads_itself_only_while_the_run_is_going(tmp_path: Path) -> None:
    running = write_run(tmp_path / "a", [], status="running")
    assert 'http-equiv="refresh"' not in write_report(running).read_text()  # nothing rewrites it
    page, status = report_mod.write(running, None, 7)
    assert status.value == "running" and '<meta http-equiv="refresh" content="7">' in page.read_text()
    assert "reloads every 7 s" in page.read_text()
    page, status = report_mod.write(write_run(tmp_path / "b", []), None, 7)
    assert status.value == "done" and 'http-equiv="refresh"' not in page.read_text()


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
        run_dir = write_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5))])
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
# Put first in <head> of a copy of the page: every console error and uncaught error is kept;
# after load (and plotly's drawing), a <pre id="check"> lists each image, each view and the errors.
CATCH = """<script>window.__errors = [];
(function () { var e = console.error; console.error = function () {
  window.__errors.push(Array.from(arguments).join(' ')); e.apply(console, arguments); }; })();
window.addEventListener('error', function (ev) { window.__errors.push('uncaught: ' + ev.message); });
window.addEventListener('unhandledrejection', function (ev) { window.__errors.push('rejected: ' + ev.reason); });
</script>"""
REPORT = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var lines = Array.from(document.images).map(function (i) {
    return 'IMG ' + i.dataset.file + ' ' + (i.complete && i.naturalWidth > 0 ? 'ok' : 'broken'); });
  document.querySelectorAll('figure.view').forEach(function (f) {
    var drawn = f.querySelector('.js-plotly-plot .main-svg') !== null;
    lines.push('VIEW ' + f.dataset.view + ' ' + (drawn ? 'ok' : 'broken')); });
  window.__errors.forEach(function (e) { lines.push('ERROR ' + e.replace(/\\s+/g, ' ')); });
  var out = document.createElement('pre'); out.id = 'check'; out.textContent = lines.join('\\n');
  document.body.appendChild(out); }, 500); });</script>"""


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium (no network, no profile of the user's); returns its stdout."""
    assert CHROMIUM
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",  # software WebGL for plotly's parallel coordinates
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=10000",
        *args,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # chromium's own children too
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return out


def rendered(tmp_path: Path, page: Path) -> list[str]:
    """What the check script reports of ``page`` in Chromium: IMG, VIEW and ERROR lines."""
    check = page.with_name("check.html")
    text = page.read_text().replace("<head>\n", "<head>\n" + CATCH, 1).replace("</body>", REPORT + "</body>")
    check.write_text(text)
    dom = chromium(tmp_path, "--dump-dom", check.as_uri())
    check.unlink()
    found = re.search(r'<pre id="check">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    return found.group(1).splitlines()


def screenshot(tmp_path: Path, page: Path, name: str, height: int = 7000) -> Path:
    """A full-page screenshot under benchmarks/out/report/ for people to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / name
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size=1280,{height}", "--hide-scrollbars", page.as_uri())
    return shot


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_the_page_renders_in_headless_chromium_without_errors(tmp_path: Path, mixed_page: Path) -> None:
    lines = rendered(tmp_path, mixed_page)
    assert [line for line in lines if line.startswith("ERROR")] == []
    assert sorted(line for line in lines if line.startswith("IMG")) == sorted(
        f"IMG {name} ok" for name in figures(mixed_page)
    )
    assert [line for line in lines if line.startswith("VIEW")] == ["VIEW scatter ok", "VIEW map ok", "VIEW parallel ok"]
    # the check can fail: a figure that does not decode, a view plotly did not draw, a script that breaks
    broken = tmp_path / "broken" / "index.html"
    broken.parent.mkdir()
    broken.write_text(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"></head>\n<body>'
        '<figure><img src="data:image/png;base64,AAAA" data-file="region.png" alt=""></figure>'
        '<figure class="view" data-view="map"><div></div></figure><script>Plotly.newPlot("map")</script>'
        "</body>\n</html>\n"
    )
    lines = rendered(tmp_path, broken)
    assert lines[:2] == ["IMG region.png broken", "VIEW map broken"]
    assert lines[2].startswith("ERROR uncaught") and "Plotly is not defined" in lines[2]
    # for people: the whole page as a browser shows it
    shot = screenshot(tmp_path, mixed_page, "mixed.png")
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[1] == 1280 and (pixels < 0.95).any(axis=-1).mean() > 0.05


def test_the_report_of_a_real_sweep(tracked_run: dict[str, Any], tmp_path: Path) -> None:
    summary = tracked_run["summary"]
    page = write_report(summary.run_dir, tmp_path / "rep")
    text = page.read_text()
    assert set(figures(page)) == {"region.png", "lr_beta.png", "progress.png", "curves.png", "timeline.png"}
    assert views(page) == ["scatter", "map", "parallel"]
    assert "2 (2 finished)" in text and "4 of a full budget of 4" in text
    assert f"{summary.run.ranked()[0].score('val_acc'):.4g}" in text
    assert "No early stopping: every trial had a budget of 2 epochs" in text
    assert "One round only" in text and "No retest yet" in text
    assert "2 trials ran" in text and "% busy" in text  # the real result.json carries Ray's clock stamps
    if CHROMIUM is not None:
        lines = rendered(tmp_path, page)
        assert [line for line in lines if not line.endswith(" ok")] == []
        screenshot(tmp_path, page, "real-sweep.png", 5000)
