from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_data import write_npz
from tuner.models import sources
from tuner.models.data import DataError, load


def test_digits_splits_are_disjoint_and_shaped_as_images() -> None:
    d = load({"name": "digits", "val_fraction": 0.2})
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert len(d.x_val) == round((len(d.x_train) + len(d.x_val)) * 0.2)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    rows = lambda a: {r.tobytes() for r in a}  # noqa: E731
    assert not rows(d.x_val) & rows(d.x_test)


def test_split_is_fixed_by_split_seed() -> None:
    a = load({"name": "digits", "val_fraction": 0.2})
    b = load({"name": "digits", "val_fraction": 0.2})
    c = load({"name": "digits", "val_fraction": 0.2, "split_seed": 1})
    assert np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    assert np.array_equal(a.x_test, c.x_test)  # the test split never moves


def test_mnist1d_is_the_published_split_and_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    d = load({"name": "mnist1d", "val_fraction": 0.2})
    assert d.input_shape == (1, 40) and d.num_classes == 10
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3200, 800, 1000)
    assert list(sources.cache_dir().glob("mnist1d-*.npz"))
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a, **k: pytest.fail("regenerated"))
    again = load({"name": "mnist1d", "val_fraction": 0.2})
    assert np.array_equal(again.x_train, d.x_train)


def test_mnist1d_generator_seed_changes_the_data() -> None:
    a = load({"name": "mnist1d", "val_fraction": 0.2, "n_samples": 500})
    b = load({"name": "mnist1d", "val_fraction": 0.2, "n_samples": 500, "seed": 7})
    assert a.x_train.shape == b.x_train.shape and not np.array_equal(a.x_train, b.x_train)
    assert a.fingerprint()["sha256"] != b.fingerprint()["sha256"]


def test_synthetic_sizes() -> None:
    d = load({"name": "synthetic", "n_samples": 500, "n_features": 7, "n_classes": 5, "seed": 3, "val_fraction": 0.1})
    assert d.input_shape == (7,) and d.num_classes == 5
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 500


def test_npz_loads_and_reports_missing_file_and_arrays(tmp_path: Path) -> None:
    d = load({"name": "npz", "path": str(write_npz(tmp_path / "mine.npz")), "val_fraction": 0.25})
    assert len(d.x_train) == 75 and len(d.x_val) == 25 and len(d.x_test) == 20
    with pytest.raises(DataError, match="no such file"):
        load({"name": "npz", "path": str(tmp_path / "absent.npz")})
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((3, 2)))
    with pytest.raises(DataError, match="missing arrays y_train, x_test, y_test"):
        load({"name": "npz", "path": str(tmp_path / "partial.npz")})
    (tmp_path / "garbage.npz").write_text("not a zip")
    with pytest.raises(
        DataError,
        match=r"garbage.npz: not a readable \.npz file \(not a valid \.npz: not a zip archive of \.npy arrays;",
    ):
        load({"name": "npz", "path": str(tmp_path / "garbage.npz")})


def test_a_file_that_is_no_npz_is_said_to_be_none_not_a_pickle(tmp_path: Path) -> None:
    """numpy takes any file that is neither a zip nor a .npy for a pickle (and refuses it as one)."""
    import pickle

    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"x_train": [1, 2]}))
    objects = np.array([{}], dtype=object)  # a real .npz, of Python objects
    np.savez(tmp_path / "objects.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    for name, rule in [
        ("text", r"not a readable \.npz file \(not a valid \.npz: not a zip archive of \.npy arrays; write one with"),
        ("empty", r"not a readable \.npz file \(not a valid \.npz: it is empty;"),
        (
            "pickled",
            r"not a valid \.npz: not a zip archive of \.npy arrays; it is a Python pickle, which is never loaded",
        ),
        ("objects", r"not a readable \.npz file \(it holds Python objects \(a pickle\), which are never loaded\)"),
    ]:
        with pytest.raises(DataError, match=rule):
            load({"name": "npz", "path": str(tmp_path / f"{name}.npz")})


def test_bad_arrays_are_refused(tmp_path: Path) -> None:
    x = np.zeros((10, 3), np.float32)
    np.savez(tmp_path / "f.npz", x_train=x, y_train=np.zeros(10) + 0.5, x_test=x, y_test=np.zeros(10, int))
    with pytest.raises(DataError, match=r"y_train\[0\]: 0.5 is not a class index"):
        load({"name": "npz", "path": str(tmp_path / "f.npz")}, task="classification")
    assert load({"name": "npz", "path": str(tmp_path / "f.npz")}).task == "regression"  # float targets decide
    np.savez(tmp_path / "g.npz", x_train=x, y_train=np.zeros(9, int), x_test=x, y_test=np.zeros(10, int))
    with pytest.raises(DataError, match="differ in length"):
        load({"name": "npz", "path": str(tmp_path / "g.npz")})


def test_callable_source(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    d = load({"name": "tests.fixtures_data:counting_data", "kwargs": {"log": str(log)}, "val_fraction": 0.2})
    assert d.input_shape == (6,) and d.num_classes == 2
    assert log.read_text().count("called") == 1
    with pytest.raises(DataError, match="No module named 'no_such_module_xyz'"):
        load({"name": "no_such_module_xyz:f"})
    with pytest.raises(DataError, match="has no function"):
        load({"name": "tests.fixtures_data:absent"})


def test_search_copy_has_no_test_split_and_fingerprint_is_stable() -> None:
    d = load({"name": "digits"})
    s = d.without_test()
    assert s.x_test is None and s.y_test is None and s.x_train is d.x_train
    assert d.fingerprint() == load({"name": "digits"}).fingerprint()
    assert set(d.fingerprint()["shapes"]) == {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test"}
    x, y = d.train_and_val()
    assert len(x) == len(d.x_train) + len(d.x_val) == len(y)


def test_regression_targets_without_columns_are_refused() -> None:
    """``y`` of shape (N, 0) made every loss NaN: each trial "diverged" and the run failed,
    blaming the configurations for the data."""
    from tuner.models.data import check_arrays

    x, xt = np.zeros((8, 3)), np.zeros((4, 3))
    with pytest.raises(DataError, match=r"^mine: y_train: targets \(8, 0\) have no columns \(T must be at least 1\)$"):
        check_arrays("mine", x, np.zeros((8, 0)), xt, np.zeros((4, 0)))
    assert check_arrays("mine", x, np.zeros((8, 2)), xt, np.zeros((4, 2)))[-1] == "regression"
