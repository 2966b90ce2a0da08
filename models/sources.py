"""Where each data source's arrays come from: scikit-learn's bundled sets, the MNIST-1D
generator, scikit-learn's generators, the user's ``.npz`` file or data function. Each returns
``x_train, y_train, x_test, y_test``; :func:`tuner.models.data.load` checks and splits them."""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .data import NPZ_KEYS, DataError, Dataset


def digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    return _fixed_test_split(x, d.target)


def diabetes() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()  # features already centred and scaled by scikit-learn
    return _fixed_test_split(d.data.astype(np.float32), d.target.astype(np.float32))


def _fixed_test_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(0).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def cache_dir() -> Path:
    """Where generated data sets are cached (``$TUNER_CACHE`` or ``~/.cache/tuner``)."""
    return Path(os.environ.get("TUNER_CACHE") or Path.home() / ".cache" / "tuner")


def mnist1d(seed: int, n_samples: int, iid_noise_scale: float, corr_noise_scale: float) -> tuple[np.ndarray, ...]:
    key = f"seed={seed},n={n_samples},iid={iid_noise_scale},corr={corr_noise_scale}"
    path = cache_dir() / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache entry: generate it again
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed, args.num_samples = int(seed), int(n_samples)
    args.iid_noise_scale, args.corr_noise_scale = float(iid_noise_scale), float(corr_noise_scale)
    state = np.random.get_state()  # the generator seeds numpy's global RNG; leave it as it was
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    arrays = {"x_train": d["x"][:, None], "y_train": d["y"], "x_test": d["x_test"][:, None], "y_test": d["y_test"]}
    _save_npz_atomic(path, arrays)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs regeneration next time


def synthetic(n_samples: int, n_features: int, n_classes: int, seed: int, flip_y: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification

    try:
        x, y = make_classification(
            n_samples=int(n_samples),
            n_features=int(n_features),
            n_informative=max(2, int(n_features) // 2),
            n_classes=int(n_classes),
            n_clusters_per_class=1,
            class_sep=1.5,
            flip_y=float(flip_y),
            random_state=int(seed),
        )
    except ValueError as e:  # e.g. more classes than the informative features can separate
        raise DataError(f"synthetic: {e}") from None
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def regression(n_samples: int, n_features: int, n_targets: int, noise: float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_regression

    x, y = make_regression(
        n_samples=int(n_samples),
        n_features=int(n_features),
        n_targets=int(n_targets),
        n_informative=max(1, int(n_features) // 2),
        noise=float(noise),
        random_state=int(seed),
    )
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def npz(path: str | os.PathLike[str] | None) -> tuple[np.ndarray, ...]:
    if path is None:
        raise DataError("npz: data.path is required")
    p = Path(path)
    try:
        if not p.is_file():
            raise DataError(f"{p}: no such file")
        with open(p, "rb") as f:
            magic = f.read(6)
        if not magic.startswith((b"PK", b"\x93NUMPY")):  # np.load would take anything else for a pickle
            what = "it is empty" if not magic else "not a zip archive of .npy arrays"
            if magic[:1] == b"\x80":
                what += "; it is a Python pickle, which is never loaded"
            raise DataError(f"{p}: not a readable .npz file (not a valid .npz: {what}; write one with numpy.savez)")
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # np.load of a .npy file: one bare array
            raise DataError(f"{p}: a single .npy array, not an .npz archive with {', '.join(NPZ_KEYS)}")
        with loaded as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"{p}: missing arrays {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
            for k in NPZ_KEYS:  # each array's header says its size: refuse before reading
                _check_size(p, k, f.zip.getinfo(f"{k}.npy").file_size if f"{k}.npy" in f.zip.namelist() else 0)
            return tuple(f[k] for k in NPZ_KEYS)
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{p}: too large to load into memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError, AttributeError) as e:
        # a damaged or foreign file: numpy and zipfile fail in many ways on one
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        if "allow_pickle" in first:  # numpy's advice to load it unsafely: a data file never runs code
            first = "it holds Python objects (a pickle), which are never loaded"
        raise DataError(f"{p}: not a readable .npz file ({first})") from None


MAX_ARRAY_BYTES = 8 * 1024**3  # one array of an .npz, uncompressed


def _check_size(path: Path, key: str, size: int) -> None:
    if size > MAX_ARRAY_BYTES:
        raise DataError(f"{path}: {key}: {size / 1024**3:.0f} GB uncompressed: too large to load into memory")


def _first_line(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def import_function(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ImportError(f"module {module_name!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def from_function(ref: str, kwargs: Mapping[str, Any], resolve: Callable[[str], Callable[..., Any]]) -> tuple[Any, ...]:
    try:
        fn = resolve(ref)
    except ImportError as e:
        raise DataError(f"{ref}: {e}") from None
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as e:  # sys.exit() while importing: bad input, not this process's exit
        raise DataError(f"{ref}: importing it raised {_first_line(e)}") from None
    try:
        out = fn(**kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # the user's function failed (sys.exit() included): its error, one line
        raise DataError(f"{ref}: the data function raised {_first_line(e)}") from None
    try:  # the returned object is the user's too: its accessors may raise anything
        return _returned_arrays(ref, out)
    except DataError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        raise DataError(f"{ref}: what the data function returned cannot be read: {_first_line(e)}") from None


def _returned_arrays(ref: str, out: Any) -> tuple[Any, ...]:
    """``x_train, y_train, x_test, y_test`` of what a data function returned: a :class:`Dataset`
    (its train and val splits joined) or a mapping of :data:`NPZ_KEYS`.

    Raises:
        DataError: not one of those, or a Dataset whose splits are not arrays that can be
            joined (x_val and x_train of one sample shape, each x as long as its y).
    """
    if isinstance(out, Dataset):
        if out.x_test is None or out.y_test is None:
            raise DataError(f"{ref}: the Dataset returned must hold its test split")
        splits = {k: getattr(out, k) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        for key, value in splits.items():
            if not isinstance(value, np.ndarray) or value.ndim == 0:
                raise DataError(
                    f"{ref}: the Dataset's {key} must be a numpy array of samples, not {type(value).__name__}"
                )
        for x, y in (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test")):
            if len(splits[x]) != len(splits[y]):
                raise DataError(f"{ref}: the Dataset's {x} holds {len(splits[x])} samples, its {y} {len(splits[y])}")
        for a, b in (("x_val", "x_train"), ("y_val", "y_train"), ("x_test", "x_train"), ("y_test", "y_train")):
            if splits[a].shape[1:] != splits[b].shape[1:]:
                raise DataError(
                    f"{ref}: the Dataset's {a} has samples of shape {splits[a].shape[1:]}, its {b} "
                    f"{splits[b].shape[1:]}: every split must have one shape"
                )
        return (
            np.concatenate([splits["x_train"], splits["x_val"]]),
            np.concatenate([splits["y_train"], splits["y_val"]]),
            splits["x_test"],
            splits["y_test"],
        )
    if not isinstance(out, Mapping) or any(k not in out for k in NPZ_KEYS):
        raise DataError(
            f"{ref}: must return a Dataset or a mapping with {', '.join(NPZ_KEYS)}, not {type(out).__name__}"
        )
    return tuple(out[k] for k in NPZ_KEYS)
