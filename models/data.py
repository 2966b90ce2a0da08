"""Data sets a trial trains on, loaded once in the driver and shared with every trial.

Every source ends as a :class:`Dataset`: float32 inputs shaped ``(N, *input_shape)`` and
int64 labels ``0..num_classes-1``, split into train / val / test. The validation split is
carved out of the training split with a fixed seed (``split_seed``); the test split is the
source's own held-out part and is never handed to a search (:meth:`Dataset.without_test`).

Sources (``data.name`` in a sweep file):

- ``digits``: scikit-learn's bundled 8x8 digits (1797 images), a fixed 20% test split,
  inputs scaled to [0, 1] and shaped ``(1, 8, 8)``.
- ``mnist1d``: MNIST-1D generated locally with the ``mnist1d`` package's generator and its
  default arguments (the published 4000/1000 split), shaped ``(1, 40)``; the arrays are
  cached on disk under ``$TUNER_CACHE`` (default ``~/.cache/tuner``).
- ``synthetic``: scikit-learn's ``make_classification``, sized for scale tests; ``flip_y``
  adds label noise (a drift to test against).
- ``npz``: the user's arrays ``x_train, y_train, x_test, y_test`` in one ``.npz`` file.
- ``"package.module:function"``: a function returning a :class:`Dataset` or a mapping
  with those four arrays.

Input layout: ``(N, F)`` is a feature vector, ``(N, C, L)`` a sequence, ``(N, C, H, W)`` an
image; the CNN picks 1-D or 2-D convolutions from it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

SOURCES = ("digits", "mnist1d", "synthetic", "npz")

# Keys each source accepts besides ``name``, ``val_fraction`` and ``split_seed``, with defaults.
SOURCE_OPTIONS: dict[str, dict[str, Any]] = {
    "digits": {},
    "mnist1d": {
        "seed": 42,  # the generator's seed (42 is the published data set)
        "num_samples": 5000,  # 80% train, 20% test, as published
        "iid_noise_scale": 2e-2,
        "corr_noise_scale": 0.25,
    },
    "synthetic": {"n_samples": 2000, "n_features": 20, "n_classes": 4, "seed": 0,
                  "flip_y": 0.01},  # the fraction of labels assigned at random (label noise)
    "npz": {"path": None},
}


class DataError(ValueError):
    """A data source could not be loaded (missing file, missing array, bad shapes)."""


@dataclass(frozen=True)
class Dataset:
    """Arrays of one data source, split three ways.

    ``x_*`` are float32 ``(N, *input_shape)``; ``y_*`` are int64 class indices.
    ``x_test``/``y_test`` are ``None`` in the copy a search sees.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def without_test(self) -> Dataset:
        """The copy handed to a search: the test split removed."""
        return replace(self, x_test=None, y_test=None)

    def train_and_val(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and val joined: what the final model trains on."""
        return np.concatenate([self.x_train, self.x_val]), np.concatenate([self.y_train, self.y_val])

    def fingerprint(self) -> dict[str, Any]:
        """Shape, dtype and sha256 of every split: identifies the data an export came from."""
        h = hashlib.sha256()
        shapes: dict[str, list[int]] = {}
        for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            arr = getattr(self, split)
            if arr is None:
                continue
            shapes[split] = list(arr.shape)
            h.update(split.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return {"name": self.name, "shapes": shapes, "dtype": str(self.x_train.dtype), "sha256": h.hexdigest()}


def load(cfg: Mapping[str, Any]) -> Dataset:
    """Load the data set a sweep's ``data`` section describes.

    Args:
        cfg: the resolved ``data`` section: ``name``, ``val_fraction`` in (0, 1),
            ``split_seed`` and the source's own options (see ``SOURCE_OPTIONS``).

    Raises:
        DataError: the source cannot be loaded; the message names the file or array.
    """
    name = cfg["name"]
    opts = {**SOURCE_OPTIONS.get(name, {}), **{k: v for k, v in cfg.items() if k not in _COMMON}}
    if name == "digits":
        x, y, xt, yt = _digits()
    elif name == "mnist1d":
        x, y, xt, yt = _mnist1d(**opts)
    elif name == "synthetic":
        x, y, xt, yt = _synthetic(**opts)
    elif name == "npz":
        x, y, xt, yt = _npz(opts["path"])
    elif ":" in name:
        x, y, xt, yt = _from_function(name, opts.get("kwargs") or {})
    else:
        raise DataError(f"unknown data source {name!r}: one of {', '.join(SOURCES)} or 'package.module:function'")
    return _split(name, x, y, xt, yt, float(cfg.get("val_fraction", 0.2)), int(cfg.get("split_seed", 0)))


_COMMON = ("name", "val_fraction", "split_seed")


def _split(name: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray,
           val_fraction: float, split_seed: int) -> Dataset:
    x, y, xt, yt = _as_arrays(name, x, y, xt, yt)
    n_val = int(round(len(x) * val_fraction))
    if not 1 <= n_val < len(x):
        raise DataError(f"{name}: val_fraction {val_fraction} leaves no train or no val samples of {len(x)}")
    order = np.random.default_rng(split_seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    num_classes = int(max(y.max(), yt.max())) + 1
    return Dataset(name, x[train], y[train], x[val], y[val], xt, yt, num_classes)


def _as_arrays(name: str, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    x, y, xt, yt = (np.asarray(a) for a in arrays)
    if len(x) != len(y) or len(xt) != len(yt):
        raise DataError(f"{name}: x and y differ in length (train {len(x)} vs {len(y)}, test {len(xt)} vs {len(yt)})")
    if x.shape[1:] != xt.shape[1:]:
        raise DataError(f"{name}: train inputs {x.shape[1:]} and test inputs {xt.shape[1:]} differ in shape")
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"{name}: inputs must be (N, F), (N, C, L) or (N, C, H, W), got {x.shape}")
    for split, labels in (("y_train", y), ("y_test", yt)):
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
            raise DataError(f"{name}: {split} must be a 1-D array of class indices >= 0")
    return x.astype(np.float32), y.astype(np.int64), xt.astype(np.float32), yt.astype(np.int64)


def _digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    order = np.random.default_rng(0).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], d.target[train], x[test], d.target[test]


def cache_dir() -> Path:
    """Where generated data sets are cached (``$TUNER_CACHE`` or ``~/.cache/tuner``)."""
    return Path(os.environ.get("TUNER_CACHE", Path.home() / ".cache" / "tuner"))


def _mnist1d(seed: int, num_samples: int, iid_noise_scale: float, corr_noise_scale: float) -> tuple[np.ndarray, ...]:
    key = f"seed={seed},n={num_samples},iid={iid_noise_scale},corr={corr_noise_scale}"
    path = cache_dir() / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed, args.num_samples = int(seed), int(num_samples)
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


def _synthetic(n_samples: int, n_features: int, n_classes: int, seed: int, flip_y: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=int(n_samples), n_features=int(n_features),
                               n_informative=max(2, int(n_features) // 2), n_classes=int(n_classes),
                               n_clusters_per_class=1, class_sep=1.5, flip_y=float(flip_y), random_state=int(seed))
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz(path: str | os.PathLike[str] | None) -> tuple[np.ndarray, ...]:
    if path is None:
        raise DataError("npz: data.path is required")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"{p}: missing arrays {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
            return tuple(f[k] for k in NPZ_KEYS)
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{p}: not a readable .npz file ({e})") from None


def resolve_callable(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the function.

    Raises:
        ImportError: the module cannot be imported or has no such callable.
    """
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # a user's module may fail in any way while importing
        raise ImportError(f"{ref}: cannot import module {module_name!r} ({type(e).__name__}: {e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ImportError(f"{ref}: module {module_name!r} has no function {attr!r}")
    return fn


def _from_function(ref: str, kwargs: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    try:
        fn = resolve_callable(ref)
    except ImportError as e:
        raise DataError(str(e)) from None
    out = fn(**kwargs)
    if isinstance(out, Dataset):
        if out.x_test is None or out.y_test is None:
            raise DataError(f"{ref}: the Dataset returned must hold its test split")
        return (np.concatenate([out.x_train, out.x_val]), np.concatenate([out.y_train, out.y_val]),
                out.x_test, out.y_test)
    if not isinstance(out, Mapping) or any(k not in out for k in NPZ_KEYS):
        raise DataError(f"{ref}: must return a Dataset or a mapping with {', '.join(NPZ_KEYS)}")
    return tuple(out[k] for k in NPZ_KEYS)
