"""The driver's copies of its staging folder to a local run directory: whole files only, the
round's own files last, unchanged files skipped, and a driver killed mid-copy leaving no file
empty or cut (what Ray's own copy does: see :mod:`tuner.ray.syncing`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.fs
import pytest
from ray.train._internal import storage
from ray.tune.execution.tune_controller import TuneController

from tuner.ray import syncing, tune_patches

# A driver's staging folder in miniature, rewritten (a new version of every file) and copied
# over and over, as Ray does after every snapshot; killed with SIGKILL at random moments.
LOOP = r"""
import json, sys, time
from pathlib import Path
import pyarrow.fs

from tuner.ray.syncing import Uploads

source, target = Path(sys.argv[1]), sys.argv[2]
upload = Uploads(None)  # Ray's copy is never called for a folder on a local disk
names = ["experiment_state.json", "t0/result.json", "t1/result.json", "t2/result.json", "t2/params.json"]
version = 0
while True:
    version += 1
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(json.dumps({"version": version, "pad": "x" * 200_000}))
    upload(local_path=str(source), fs=pyarrow.fs.LocalFileSystem(), fs_path=target)
    print(version, flush=True)
"""


def kill_mid_copy(tmp_path: Path, kills: int) -> list[str]:
    """Run LOOP ``kills`` times, each killed after its first copies at a random moment; the
    target files then found empty or cut."""
    damaged = []
    target = tmp_path / "target"
    for i in range(kills):
        source = tmp_path / f"source{i}"
        proc = subprocess.Popen(
            [sys.executable, "-c", LOOP, str(source), str(target)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # one whole copy made
        time.sleep(0.05 + 0.02 * i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for f in sorted(p for p in target.rglob("*") if p.is_file() and not p.name.endswith(".tuner-partial")):
            try:
                json.loads(f.read_text())
            except ValueError:
                damaged.append(f"{f.relative_to(target)} ({f.stat().st_size} bytes)")
    return damaged


@pytest.mark.slow
def test_a_driver_killed_at_random_moments_of_its_copies_leaves_every_file_whole(tmp_path: Path) -> None:
    assert kill_mid_copy(tmp_path, kills=10) == []


@pytest.mark.parametrize("whole", [True, False])
def test_a_file_is_replaced_by_a_rename_never_rewritten_in_place(tmp_path: Path, whole: bool) -> None:
    """Why a kill cannot cut a file: the run directory's file is a new one renamed over the
    old, so whoever has the old one open (or the disk, at the kill) keeps it whole. Ray's own
    copy (``whole=False``, the contrast) truncates and rewrites the very file."""
    source, target = tmp_path / "staging", tmp_path / "target"
    (source / "t").mkdir(parents=True)
    (source / "t" / "result.json").write_text("old")
    local = pyarrow.fs.LocalFileSystem()
    upload = syncing.Uploads(storage._upload_to_fs_path) if whole else storage._upload_to_fs_path
    upload(local_path=str(source), fs=local, fs_path=str(target))
    with open(target / "t" / "result.json") as before:
        (source / "t" / "result.json").write_text("new version")
        upload(local_path=str(source), fs=local, fs_path=str(target))
        assert (target / "t" / "result.json").read_text() == "new version"
        assert before.read() == ("old" if whole else "new version")


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_copy_makes_the_target_the_source_and_the_second_copies_only_what_changed(tmp_path: Path) -> None:
    source, target = tmp_path / "staging", tmp_path / "run" / "trials"
    for name, text in {
        "experiment_state.json": "s1",
        "a/result.json": "a1",
        "a/params.json": "p",
        "b/c/d": "d",
    }.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    copied: syncing.Copied = {}
    assert syncing.upload(source, target, copied) == 4
    assert tree(target) == tree(source)
    (source / "a" / "result.json").write_text("a1\na2")
    assert syncing.upload(source, target, copied) == 1
    assert tree(target) == tree(source)
    assert not list(target.rglob("*.tuner-partial"))
    assert syncing.upload(source, target, copied) == 0


def test_the_rounds_own_files_are_copied_after_its_trials_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "staging"
    for name in ("experiment_state.json", "asha-rungs.json", "t0/result.json", "t1/result.json"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    order: list[str] = []
    copyfile = syncing.shutil.copyfile

    def recording(src: Any, dst: Any) -> Any:
        order.append(Path(src).relative_to(source).as_posix())
        return copyfile(src, dst)

    monkeypatch.setattr(syncing.shutil, "copyfile", recording)
    syncing.upload(source, tmp_path / "target", {})
    assert order[:2] == ["t0/result.json", "t1/result.json"]
    assert sorted(order[2:]) == ["asha-rungs.json", "experiment_state.json"]


def test_a_file_removed_from_staging_while_listed_is_left_out_and_a_leftover_partial_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "staging", tmp_path / "target"
    (source / "t").mkdir(parents=True)
    (source / "t" / "result.json").write_text("new")
    (source / "t" / "gone.json").write_text("x")
    (target / "t").mkdir(parents=True)
    (target / "t" / ".result.json.tuner-partial").write_text("cut sho")  # a copy a kill cut short
    real = syncing.Path.stat

    def stat(self: Path, **kw: Any) -> os.stat_result:
        if self.name == "gone.json":
            raise FileNotFoundError(self)
        return real(self, **kw)

    monkeypatch.setattr(syncing.Path, "stat", stat)
    assert syncing.upload(source, target, {}) == 1
    assert tree(target) == {"t/result.json": "new"}


def test_object_stores_single_files_and_exclusions_keep_rays_copy(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    upload = syncing.Uploads(lambda **kw: calls.append(kw))
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    local = pyarrow.fs.LocalFileSystem()
    mock = pyarrow.fs.SubTreeFileSystem(str(tmp_path), local)  # not a LocalFileSystem: Ray's copy
    upload(local_path=str(tmp_path / "dir"), fs=mock, fs_path="out")
    upload(local_path=str(tmp_path / "file"), fs=local, fs_path=str(tmp_path / "out1"))
    upload(local_path=str(tmp_path / "dir"), fs=local, fs_path=str(tmp_path / "out2"), exclude=["*.pt"])
    assert len(calls) == 3
    upload(local_path=str(tmp_path / "dir"), fs=local, fs_path=str(tmp_path / "out3"))
    assert len(calls) == 3 and (tmp_path / "out3").is_dir()


def test_within_the_block_rays_syncer_uploads_through_whole_file_copies_and_not_after() -> None:
    syncer = storage._FilesystemSyncer(storage_filesystem=pyarrow.fs.LocalFileSystem())
    checkpoint = TuneController.checkpoint
    with tune_patches.whole_file_syncs():
        run, kwargs = syncer._sync_up_command(local_path="/a", uri="/b")
        assert isinstance(run, syncing.Uploads)
        assert kwargs["local_path"] == "/a" and kwargs["fs_path"] == "/b"
        assert TuneController.checkpoint is not checkpoint
    run, _ = syncer._sync_up_command(local_path="/a", uri="/b")
    assert run is storage._upload_to_fs_path and TuneController.checkpoint is checkpoint


@dataclass
class Trial:
    trial_id: str
    status: str = "RUNNING"
    storage: Any = None

    def __post_init__(self) -> None:
        self.storage = SimpleNamespace(trial_dir_name=f"trial_{self.trial_id}")


def test_a_copy_looks_only_in_the_folders_of_trials_that_can_still_write_and_in_all_of_them_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "staging", tmp_path / "target"
    trials = [Trial("a"), Trial("b"), Trial("c", "PENDING"), Trial("d", "TERMINATED"), Trial("e", "ERROR")]
    for t in trials:
        (source / t.storage.trial_dir_name).mkdir(parents=True)
    (source / "experiment_state.json").write_text("s")
    uploads = syncing.Uploads(storage._upload_to_fs_path)
    local = pyarrow.fs.LocalFileSystem()
    looked: list[frozenset[str] | None] = []
    real_upload = syncing.upload
    monkeypatch.setattr(
        syncing, "upload", lambda s, t, c, folders=None: looked.append(folders) or real_upload(s, t, c, folders)
    )

    def copy() -> None:
        uploads(local_path=str(source), fs=local, fs_path=str(target))

    uploads.note(trials)  # ended trials' folders: in the next two copies, their last lines
    copy()
    trials[0].status = "TERMINATED"
    uploads.note(trials)
    copy()
    uploads.note(trials)
    copy()
    uploads.note(trials)
    copy()
    every = {f"trial_{i}" for i in "abcde"}
    assert looked == [
        frozenset(every),
        frozenset(every),
        frozenset(every - {"trial_d", "trial_e"}),
        frozenset({"trial_b", "trial_c"}),
    ]
    trials[3].status = "PENDING"  # resumed: it writes again
    uploads.note(trials)
    copy()
    assert looked[-1] == frozenset({"trial_b", "trial_c", "trial_d"})
    uploads.note([*trials, SimpleNamespace(status="RUNNING")])  # not a trial as this Ray makes them
    copy()
    assert looked[-1] is None  # every folder
    uploads.note(trials)
    copy()
    assert looked[-1] == frozenset({"trial_b", "trial_c", "trial_d"})
    monkeypatch.setattr(syncing.time, "monotonic", lambda: uploads._full_at + syncing.FULL_EVERY_S)
    copy()
    assert looked[-1] is None  # every folder, now and then


def test_only_the_listed_folders_are_copied_and_the_rounds_own_files_always(tmp_path: Path) -> None:
    source, target = tmp_path / "staging", tmp_path / "target"
    for name in ("state.json", "t0/result.json", "t1/result.json", "t1/sub/x"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    assert syncing.upload(source, target, {}, frozenset({"t1"})) == 3
    assert set(tree(target)) == {"state.json", "t1/result.json", "t1/sub/x"}


def test_copying_or_pickling_rays_storage_with_it_carries_nothing_it_remembers(tmp_path: Path) -> None:
    """Tune deep-copies and pickles the experiment's storage (its syncer holding the copy last
    launched) with every trial it creates: what an Uploads remembers must not go along (it
    grows with the trials, and changes under a copy running in the background)."""
    import copy
    import pickle

    uploads = syncing.Uploads(storage._upload_to_fs_path)
    uploads.copied.update({f"/s/{i}": (1, 2) for i in range(1000)})
    assert copy.deepcopy({"cmd": (uploads, {})})["cmd"][0] is uploads
    again = pickle.loads(pickle.dumps(uploads))
    assert isinstance(again, syncing.Uploads) and again.copied == {} and again.ray_upload is storage._upload_to_fs_path
    assert len(pickle.dumps(uploads)) < 300


def test_the_trials_are_noted_only_before_a_snapshot_that_is_due_or_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's loop asks for a snapshot at every step; going over every trial then would
    cost the driver a pass over all trials a step. They are noted only when Ray's rule says the
    snapshot is due (its period passed, or forced), and Ray's own snapshot runs every time."""
    noted: list[int] = []
    monkeypatch.setattr(syncing.Uploads, "note", lambda self, trials: noted.append(len(trials)))
    saved: list[bool] = []
    manager = SimpleNamespace(
        _last_save_time=time.monotonic(),
        _checkpoint_period=60.0,
        _should_force_sync_up=False,
        sync_up_experiment_state=lambda save_fn, force, wait: saved.append(force),
    )
    controller = SimpleNamespace(_checkpoint_manager=manager, _trials=[Trial("a"), Trial("b")], save_to_dir=None)
    with tune_patches.whole_file_syncs():
        TuneController.checkpoint(controller)
        assert noted == [] and saved == [False]
        TuneController.checkpoint(controller, force=True)
        assert noted == [2]
        manager._last_save_time -= 61  # the period has passed
        TuneController.checkpoint(controller)
        assert noted == [2, 2] and saved == [False, True, False]


def test_an_armed_watchdogs_empty_trace_is_not_copied_and_a_written_one_is(tmp_path: Path) -> None:
    """While a trial runs, its ``timed-out.trace`` is the empty file its watchdog holds open; a
    copy of it would stay in the run directory after the trial removes its own."""
    staging, run = tmp_path / "staging", tmp_path / "run"
    (staging / "trial_a").mkdir(parents=True)
    (staging / "trial_b").mkdir()
    (staging / "trial_a" / "timed-out.trace").write_text("")
    (staging / "trial_a" / "result.json").write_text('{"epoch": 1}\n')
    (staging / "trial_b" / "timed-out.trace").write_text('Thread 0x1 (most recent call first):\n  File "f.py"\n')
    copied: syncing.Copied = {}
    assert syncing.upload(staging, run, copied) == 2
    assert not (run / "trial_a" / "timed-out.trace").exists()
    assert (run / "trial_a" / "result.json").read_text() == '{"epoch": 1}\n'
    assert (run / "trial_b" / "timed-out.trace").read_text().startswith("Thread 0x1")
    (staging / "trial_a" / "timed-out.trace").write_text("Thread 0x2 (most recent call first):\n")  # it fired
    assert syncing.upload(staging, run, copied) == 1
    assert (run / "trial_a" / "timed-out.trace").read_text().startswith("Thread 0x2")


def test_on_an_object_store_rays_copy_leaves_out_the_armed_watchdogs_empty_traces(tmp_path: Path) -> None:
    """An object store (S3, GCS) keeps Ray's copy: there an empty trace copied while its trial
    ran stayed after the trial removed its own. Ray's own upload, to an in-memory store (not a
    local filesystem), is told to leave out the empty ones of the trials that can still write,
    and copies one once it is written; a folder name with a pattern's characters is matched as
    itself."""
    staging = tmp_path / "staging"
    for name in ("trial_a", "trial_[b]", "trial_c"):
        (staging / name).mkdir(parents=True)
        (staging / name / "result.json").write_text('{"epoch": 1}\n')
    (staging / "trial_a" / "timed-out.trace").write_text("")
    (staging / "trial_[b]" / "timed-out.trace").write_text("")
    (staging / "trial_c" / "timed-out.trace").write_text("Thread 0x1 (most recent call first):\n")
    (staging / "experiment_state.json").write_text("{}")
    store = pyarrow.fs._MockFileSystem()
    upload = syncing.Uploads(storage._upload_to_fs_path)

    def stored() -> set[str]:
        found = store.get_file_info(pyarrow.fs.FileSelector("run", recursive=True))
        return {f.path.removeprefix("run/") for f in found if f.type == pyarrow.fs.FileType.File}

    upload(local_path=str(staging), fs=store, fs_path="run")
    assert stored() == {
        "experiment_state.json",
        "trial_a/result.json",
        "trial_[b]/result.json",
        "trial_c/result.json",
        "trial_c/timed-out.trace",
    }
    (staging / "trial_a" / "timed-out.trace").write_text("Thread 0x2 (most recent call first):\n")  # it fired
    upload.note([Trial("a"), Trial("[b]")])  # trial_c ended long ago: no longer looked at
    upload(local_path=str(staging), fs=store, fs_path="run")
    assert "trial_a/timed-out.trace" in stored() and "trial_[b]/timed-out.trace" not in stored()
    with store.open_input_stream("run/trial_a/timed-out.trace") as f:
        assert f.read().startswith(b"Thread 0x2")
