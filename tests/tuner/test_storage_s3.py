"""``--storage s3://...`` end to end against an S3-compatible server on localhost (moto's
standalone server): a sweep whose driver is killed mid-way, ``tuner resume`` of the URI,
``tuner export`` and ``tuner report`` of it -- reached through the endpoint settings a user of
MinIO sets (``AWS_ENDPOINT_URL_S3``, keys, region), read by pyarrow in tuner and in Ray.

Skipped, with the reason, where moto's server cannot start (``pip install "moto[server]"``,
part of the ``dev`` extra)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import ROOT, free_port, wait_for
from tests.conftest import tiny_sweep
from tuner.cli import main

BUCKET = "tuner-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free loopback port, a bucket in it, and the environment that
    points pyarrow at it."""
    import importlib.util

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        pytest.skip('moto\'s S3 server is not installed (pip install "moto[server]", in the dev extra)')
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log")
    # this interpreter's moto (a `moto_server` on PATH may be another Python's, another version)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        import pyarrow.fs

        def bucket() -> bool:
            if proc.poll() is not None:
                return True
            try:
                fs = pyarrow.fs.S3FileSystem(
                    endpoint_override=f"127.0.0.1:{port}",
                    scheme="http",
                    access_key="testing",
                    secret_key="testing",
                    region="us-east-1",
                    allow_bucket_creation=True,
                )
                fs.create_dir(BUCKET)
                return True
            except OSError:
                return False

        try:
            wait_for(bucket, 60, "moto's S3 server")
        except TimeoutError:
            pytest.skip("moto's S3 server did not answer in 60 s")
        if proc.poll() is not None:
            pytest.skip(f"moto's S3 server exited: {Path(log.name).read_text()[-300:]}")
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def aws(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 server's environment in this process too (for the commands run in-process)."""
    for k, v in s3.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return s3


def _files(uri_path: str) -> list[str]:
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(f"s3://{uri_path}")
    info = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    return [f.path for f in info if f.type == pyarrow.fs.FileType.File]


def _read(path: str) -> bytes:
    import pyarrow.fs

    fs, p = pyarrow.fs.FileSystem.from_uri(f"s3://{path}")
    with fs.open_input_stream(p) as f:
        return f.read()  # type: ignore[no-any-return]


def _kill_ray_of(temp_dir: str) -> None:
    """End every process whose command line names ``temp_dir`` (the killed driver's own Ray)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if temp_dir.encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_a_missing_bucket_is_one_line_before_ray_starts(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(), sort_keys=False))
    from tuner.ray import cluster

    def no_ray(*a: Any, **k: Any) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(cluster, "connect", no_ray)
    assert main(["run", str(sweep), "--storage", "s3://no-such-bucket/runs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "--storage: s3://no-such-bucket/runs: no bucket 'no-such-bucket' (create it first; for an S3-compatible "
        "store, is AWS_ENDPOINT_URL_S3 set?)"
    ]
    assert main(["export", "s3://no-such-bucket/runs/x"]) == 2
    assert "cannot read the run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_on_s3_survives_a_killed_driver_and_exports_and_reports(
    aws: dict[str, str], tmp_path: Path, capsys: Any
) -> None:
    """One tiny sweep to ``s3://``: the driver is SIGKILLed once a trial has reported, ``tuner
    resume`` of the URI finishes it, then ``export`` and ``report`` read it from the bucket."""
    doc = tiny_sweep(
        **{
            "model": {"name": "tests.fixtures_data:slow_net", "kwargs": {"width": 8, "step_s": 0.05}},
            "search.num_samples": 2,
            "train.epochs": 8,  # ~2.5 s a trial: still running when the first result is in the bucket
            "scheduler.name": "none",
        }
    )
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    ray_tmp = tempfile.mkdtemp(prefix="s3r-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "AWS_ENDPOINT_URL")},
        **aws,
        "PYTHONPATH": str(ROOT),
        "RAY_TMPDIR": ray_tmp,
        "TUNER_CACHE": str(tmp_path / "cache"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    uri = f"s3://{BUCKET}/runs/tiny"
    out = open(tmp_path / "run.log", "wb")
    driver = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", "s.yaml", "--storage", f"s3://{BUCKET}/runs", "--num-cpus", "2"],
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def reported() -> bool:
            assert driver.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            for f in _files(f"{BUCKET}/runs/tiny"):
                if f.endswith("/result.json") and b'"epoch"' in _read(f):
                    return True
            return False

        wait_for(reported, 240, "a trial's first result in the bucket", every=1.0)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        _kill_ray_of(ray_tmp)
    assert json.loads(_read(f"{BUCKET}/runs/tiny/run.json"))["status"] == "running"

    resumed = subprocess.run(
        [sys.executable, "-m", "tuner", "resume", uri, "--num-cpus", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _kill_ray_of(ray_tmp)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"exported best config: {uri}/best.yaml" in resumed.stdout
    meta = json.loads(_read(f"{BUCKET}/runs/tiny/run.json"))
    assert meta["status"] == "done" and meta["resumed"]

    # export and report read the run from the bucket (in this process: no Ray)
    capsys.readouterr()
    assert main(["export", uri, "-o", str(tmp_path / "best.yaml")]) == 0
    export = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert export["metric"] == "val_acc" and len(export["top"]) == 2
    assert main(["report", uri]) == 0
    assert f"report: {uri}/report/index.html" in capsys.readouterr().out
    assert f"{BUCKET}/runs/tiny/report/index.html" in _files(f"{BUCKET}/runs/tiny/report")
    assert not any(".uploading" in f for f in _files(f"{BUCKET}/runs/tiny"))


def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.ray import cluster

    def no_ray(*a: Any, **k: Any) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(cluster, "connect", no_ray)


def test_credentials_that_may_not_write_are_one_line_each_time_before_anything_is_written(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys: moto's server lets such a client read (the bucket is there) and refuses some of
    its writes. The pre-flight check says so before a run directory is made: the same line and
    exit 2 each time, and no run in the bucket."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(), sort_keys=False))
    _no_ray(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    prefix = f"ro-{tmp_path.name}"
    uri = f"s3://{BUCKET}/{prefix}/runs"
    said = []
    for _ in range(3):
        assert main(["run", str(sweep), "--storage", uri, "--name", "ro", "--json"]) == 2
        out, err = capsys.readouterr()
        assert json.loads(out)["status"] == "bad_input"
        said.append(err.strip().splitlines())
    assert said[0] == said[1] == said[2] and len(said[0]) == 1, said
    assert said[0][0].startswith(f"--storage: {uri}: cannot write there: access denied (AWS Error ACCESS_DENIED")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    left = _files(f"{BUCKET}/{prefix}")
    assert not [f for f in left if "/runs/ro" in f or f.endswith("run.json")], left
    assert not (tmp_path / "cache" / "remote-runs").exists()


def test_writable_credentials_pass_the_check_and_it_leaves_nothing(aws: dict[str, str], tmp_path: Path) -> None:
    from tuner.storage import check_storage

    uri = f"s3://{BUCKET}/ok-{tmp_path.name}/runs"
    assert check_storage(uri, reach=True) == uri
    assert _files(f"{BUCKET}/ok-{tmp_path.name}") == []


def test_a_store_that_cannot_be_reached_is_exit_1_with_the_whole_cause(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint where nothing listens: the environment's problem (exit 1, not bad input),
    said in one line with pyarrow's message whole (it used to be cut at 200 characters,
    mid-parenthesis); the milliseconds curl waited are left out (the same line each time, see
    test_storage.py)."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(), sort_keys=False))
    _no_ray(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    assert main(["run", str(sweep), "--storage", f"s3://{BUCKET}/runs", "--json"]) == 1  # pyarrow retries: 6 s
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "failed"
    assert len(err.strip().splitlines()) == 1, err
    line = err.strip()
    assert line.startswith(f"tuner: --storage: s3://{BUCKET}/runs: cannot be used: the store cannot be reached (")
    assert line.endswith("Could not connect to server)") and line.count("(") == line.count(")"), line
    assert "internal error" not in line and " ms" not in line
    assert main(["export", f"s3://{BUCKET}/runs/x"]) == 1
    assert "s3://tuner-test/runs/x: cannot read the run directory: the store cannot be reached (" in (
        capsys.readouterr().err
    )


def test_export_of_an_s3_run_says_its_uri_and_names_the_local_copy(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    from tests.tuner.fake_run import epochs, make_run

    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6)), ({"train.lr": 0.2}, epochs(0.7))])
    uri = f"s3://{BUCKET}/ex-{tmp_path.name}/tiny"
    _upload(run_dir, uri)
    assert main(["export", uri]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    from tuner.storage import mirror_dir

    assert out == [f"exported: {uri}/best.yaml (local copy: {mirror_dir(uri) / 'best.yaml'})"]
    assert f"{BUCKET}/ex-{tmp_path.name}/tiny/best.yaml" in _files(f"{BUCKET}/ex-{tmp_path.name}/tiny")


def test_a_resume_with_credentials_that_may_not_write_is_refused_before_anything_is_written(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tuner resume URI`` could read the run, and failed at its first write (``run.json``),
    once Ray had started: it is refused up front as ``tuner run`` refuses, exit 2, nothing of
    the run changed."""

    from tests.tuner.fake_run import epochs, make_run

    _no_ray(monkeypatch)
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6))])
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    uri = f"s3://{BUCKET}/rs-{tmp_path.name}/tiny"
    _upload(run_dir, uri)
    before = {f: _read(f) for f in _files(f"{BUCKET}/rs-{tmp_path.name}")}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    assert main(["resume", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"RUN_DIR: {uri}: cannot write there: access denied (AWS Error"), err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    after = {f: _read(f) for f in _files(f"{BUCKET}/rs-{tmp_path.name}") if ".tuner-write-check" not in f}
    assert after == before


def test_a_uri_that_holds_no_run_is_said_of_the_uri_not_the_local_mirror(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.fs

    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    uri = f"s3://{BUCKET}/empty-{tmp_path.name}/x"
    fs, root = pyarrow.fs.FileSystem.from_uri(uri)
    fs.create_dir(root)  # a folder, nothing of a run in it
    assert main(["export", uri]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"{uri}: not a tuner run directory (no run.json)"]


def test_a_store_that_fails_at_a_runs_first_writes_leaves_no_half_made_run(
    aws: dict[str, str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-flight check passed, then the store failed between the run's first uploads
    (``run.json`` written, ``sweep.yaml`` refused): the run directory begun at the URI is
    removed, and the line is the store's (exit 1), not a bug's."""
    import tuner.startup
    from tuner.ray import joining
    from tuner.storage import RunStore
    from tuner.store_errors import StoreError

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(), sort_keys=False))
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(joining, "resolve", lambda address, num_cpus: None)  # no Ray: not what this is about
    monkeypatch.setattr(tuner.startup, "preload", lambda: None)
    monkeypatch.setattr(tuner.startup, "prepare", lambda *a: (None, {"CPU": 1.0}, None))
    push = RunStore.push

    def refused(self: RunStore, *names: str) -> None:
        if "sweep.yaml" in names:
            raise StoreError(f"cannot write {self.uri}/sweep.yaml: access denied (AWS Error ACCESS_DENIED)")
        push(self, *names)

    monkeypatch.setattr(RunStore, "push", refused)
    prefix = f"half-{tmp_path.name}"
    assert main(["run", str(sweep), "--storage", f"s3://{BUCKET}/{prefix}/runs", "--name", "half"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"tuner: cannot write s3://{BUCKET}/{prefix}/runs/half/sweep.yaml: access denied (AWS Error ACCESS_DENIED)"
    ]
    assert _files(f"{BUCKET}/{prefix}") == []


def _upload(run_dir: Path, uri: str) -> None:
    """Every file of a local run directory copied to ``uri`` (a run made elsewhere, in the bucket)."""
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(uri)
    for f in run_dir.rglob("*"):
        if f.is_file():
            with fs.open_output_stream(f"{root}/{f.relative_to(run_dir).as_posix()}") as out:
                out.write(f.read_bytes())
