"""Run directories on a local path or a URI: scheme checks, names, uploads, downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.errors import InputError
from tuner.storage import RunStore, check_storage, is_uri


def test_storage_forms() -> None:
    assert check_storage("runs") == "runs" and check_storage("/mnt/shared/runs") == "/mnt/shared/runs"
    for uri in ("s3://bucket/runs", "gs://bucket/runs", "file:///tmp/runs", "hdfs://nn:8020/runs", "abfs://c@a/x"):
        assert check_storage(uri) == uri and is_uri(uri)
    assert not is_uri("C:\\runs") and not is_uri("runs")


@pytest.mark.parametrize(
    "bad, rule",
    [
        ("ftp://host/runs", "has the unsupported scheme 'ftp' (a local path or one of file://, s3://"),
        ("http://host/runs", "unsupported scheme 'http'"),
        ("s3://", "names no bucket or path"),
        ("", "empty path"),
    ],
)
def test_bad_storage_is_bad_input(bad: str, rule: str) -> None:
    with pytest.raises(InputError, match="--storage: ") as e:
        check_storage(bad)
    assert rule in str(e.value)


def test_a_storage_path_near_path_max_is_refused_up_front(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    deep = tmp_path
    while len(os.fsencode(deep)) < path_max - 120:  # each folder name within NAME_MAX, the path near PATH_MAX
        deep = deep / ("d" * 200)
    with pytest.raises(InputError) as e:
        check_storage(str(deep))
    [line] = e.value.problems
    assert line.startswith("--storage: ") and f"must be at most {path_max - 300} bytes (PATH_MAX {path_max})" in line
    fits = tmp_path / "runs"
    assert check_storage(str(fits)) == str(fits)  # an ordinary path: accepted
    assert main(["run", str(write_sweep()), "--storage", str(deep)]) == 2
    assert "a run's folders need 300 bytes more below it" in capsys.readouterr().err
    assert not (tmp_path / ("d" * 200)).exists()  # nothing started or written


def test_a_bad_storage_or_address_exits_2_before_anything_starts(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep()
    assert main(["run", str(sweep), "--storage", "ftp://host/runs"]) == 2
    assert main(["run", str(sweep), "--storage", str(tmp_path / "runs"), "--address", "not an address"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("--storage: 'ftp://host/runs' has the unsupported scheme 'ftp'")
    assert err[1] == "--address: 'not an address' must be auto, HOST:PORT or ray://HOST:PORT"
    assert not (tmp_path / "runs").exists()


def test_a_uri_run_directory_is_mirrored_locally_and_uploaded_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    uri = f"file://{tmp_path}/bucket/runs"
    store = RunStore.create(uri, "tiny")
    assert store.uri == uri + "/tiny" and store.tune_storage == store.uri == store.location
    assert str(store.local).startswith(str(tmp_path / "cache" / "remote-runs"))
    store.mkdir()
    (store.local / "run.json").write_text(json.dumps({"status": "running"}))
    store.push("run.json", "missing.json")  # a file not written yet is skipped
    remote = tmp_path / "bucket" / "runs" / "tiny"
    assert json.loads((remote / "run.json").read_text()) == {"status": "running"}
    assert sorted(p.name for p in remote.iterdir()) == ["run.json"]  # no temporary left behind
    # the name is taken now: the next run gets its own directory
    assert RunStore.create(uri, "tiny").uri == uri + "/tiny-2"
    # what Ray Tune wrote to the URI comes back without checkpoints
    trial = remote / "round-0" / "trial_1"
    (trial / "checkpoint_000001").mkdir(parents=True)
    (trial / "checkpoint_000001" / "state.pt").write_bytes(b"weights")
    (trial / "result.json").write_text('{"epoch": 1}\n')
    store.pull("round-0")
    assert (store.local / "round-0" / "trial_1" / "result.json").read_text() == '{"epoch": 1}\n'
    assert not (store.local / "round-0" / "trial_1" / "checkpoint_000001").exists()
    # an existing URI run opens through its mirror
    opened = RunStore.open(uri + "/tiny")
    assert opened.local == store.local and (opened.local / "run.json").is_file()
    with pytest.raises(InputError, match="cannot read the run directory"):
        RunStore.open(uri + "/nothing-here")


def test_a_local_run_directory_is_itself(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "runs", "tiny")
    assert store.uri is None and store.local == tmp_path / "runs" / "tiny" and store.tune_storage == str(store.local)
    store.mkdir()
    store.push("run.json")  # nothing to upload
    store.pull()
    (store.local / "run.json").write_text("{}")
    assert RunStore.create(tmp_path / "runs", "tiny").local == tmp_path / "runs" / "tiny-2"


def test_a_file_uri_obeys_the_rules_of_the_local_path_it_names(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``file:///path`` is a local path written as a URI: a path that is a file is refused up
    front as the plain path is (it was a NotADirectoryError deep in the run, called a bug)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_storage(f"file://{afile}")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_storage(str(afile))
    assert check_storage(f"file://{tmp_path / 'runs'}") == f"file://{tmp_path / 'runs'}"
    assert main(["run", str(write_sweep()), "--storage", f"file://{afile}"]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and "internal error" not in err
    assert afile.read_text() == "not a folder"


def test_a_run_directory_that_cannot_be_made_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder must go")
    store = RunStore(tmp_path / "blocker" / "run")
    with pytest.raises(InputError, match=r"cannot make the run directory \(.*Not a directory"):
        store.mkdir()


def test_a_store_that_fails_during_a_run_is_one_line_of_the_stores_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 store that goes away mid-run (or refuses this writer) made pyarrow raise OSError
    from push/pull, which the command called an internal error: it is a StoreError (a
    RunError: exit 1) naming the URI and the file."""
    from tuner import storage
    from tuner.store_errors import StoreError

    monkeypatch.setenv("TUNER_CACHE", str(tmp_path / "cache"))
    store = RunStore.create(f"file://{tmp_path}/bucket/runs", "tiny")
    store.mkdir()
    (store.local / "run.json").write_text("{}")

    def down(*args: object, **kwargs: object) -> None:
        raise OSError("When initiating multiple part upload: AWS Error NETWORK_CONNECTION\nmore")

    class Gone:  # the store's client: every call fails as pyarrow's does
        open_output_stream = get_file_info = move = staticmethod(down)

    monkeypatch.setattr(storage, "_filesystem", lambda uri: (Gone(), uri.split("://", 1)[1]))
    with pytest.raises(StoreError) as caught:
        store.push("run.json")
    assert str(caught.value) == (
        f"cannot write {store.uri}/run.json: the store cannot be reached (When initiating multiple part upload: "
        "AWS Error NETWORK_CONNECTION more)"
    )
    with pytest.raises(StoreError, match=r"cannot read .*: the store cannot be reached \(When initiating"):
        store.pull("trials")


def test_a_store_message_is_quoted_whole_on_one_line_the_same_each_time() -> None:
    from tuner.store_errors import MAX_CAUSE, StoreError, store_cause, store_failure

    said = (
        "When getting information for bucket 'b': AWS Error NETWORK_CONNECTION during HeadBucket operation: "
        "curlCode: 7, Could not connect to server; Details: Failed to connect to 127.0.0.1:21999 after 0 ms: "
        "Could not connect to server\n(second line)"
    )
    cause = store_cause(OSError(said))
    assert (
        len(said) > 200 and "after 0 ms" not in cause and cause == store_cause(OSError(said.replace(" 0 ms", " 7 ms")))
    )
    assert cause.endswith("Could not connect to server (second line)")  # not cut at 200 characters
    failure = store_failure("--storage: s3://b/runs", "cannot be used", OSError(said))
    assert isinstance(failure, StoreError) and str(failure).endswith("Could not connect to server (second line))")
    denied = store_failure("--storage: s3://b/runs", "cannot write there", OSError("AWS Error ACCESS_DENIED x"))
    assert isinstance(denied, InputError) and "cannot write there: access denied (AWS Error" in str(denied)
    huge = store_cause(OSError("x" * 5000))
    assert len(huge) == MAX_CAUSE and huge.endswith("...")
