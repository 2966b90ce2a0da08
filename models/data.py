"""Data sets a trial trains on, loaded once in the driver and shared with every trial.

Every source ends as a :class:`Dataset`: float32 inputs shaped ``(N, *input_shape)`` and
targets -- int64 class indices ``0..num_outputs-1`` for classification, float32 ``(N,)`` or
``(N, T)`` values for regression -- split into train / val / test. The validation split is
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
- ``diabetes``: scikit-learn's bundled diabetes regression set (442 patients, 10 features,
  a disease-progression target), a fixed 20% test split.
- ``regression``: scikit-learn's ``make_regression`` (``n_targets`` > 1: a (N, T) target).
- ``npz``: the user's arrays ``x_train, y_train, x_test, y_test`` in one ``.npz`` file.
- ``"package.module:function"``: a function returning a :class:`Dataset` or a mapping
  with those four arrays.

Input layout: ``(N, F)`` is a feature vector, ``(N, C, L)`` a sequence, ``(N, C, H, W)`` an
image; the CNN picks 1-D or 2-D convolutions from it. Bad arrays (non-finite values, a
class index of a billion, no features, text) are refused with the array and the first bad
index, before any trial starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SOURCES = ("digits", "mnist1d", "synthetic", "diabetes", "regression", "npz")
TASKS = ("classification", "regression")
# The task a built-in source's targets give (integer class labels, or float values): what a
# sweep's metric is checked against before any data is loaded; npz files and a function's data
# tell only by their arrays.
SOURCE_TASKS = {
    "digits": "classification",
    "mnist1d": "classification",
    "synthetic": "classification",
    "diabetes": "regression",
    "regression": "regression",
}
MAX_CLASSES = 100_000  # a class index beyond this is a mistake, not a 10^9-way output layer
MAX_ELEMENTS = 2_000_000_000  # values in all arrays together (8 GB of float32)

# Keys each source accepts besides ``name``, ``val_fraction`` and ``split_seed``, with defaults.
SOURCE_OPTIONS: dict[str, dict[str, Any]] = {
    "digits": {},
    "diabetes": {},
    "mnist1d": {
        "seed": 42,  # the generator's seed (42 is the published data set)
        "n_samples": 5000,  # 80% train, 20% test, as published
        "iid_noise_scale": 2e-2,
        "corr_noise_scale": 0.25,
    },
    "synthetic": {
        "n_samples": 2000,
        "n_features": 20,
        "n_classes": 4,
        "seed": 0,
        "flip_y": 0.01,
    },  # the fraction of labels assigned at random (label noise)
    "regression": {"n_samples": 2000, "n_features": 20, "n_targets": 1, "noise": 10.0, "seed": 0},
    "npz": {"path": None},
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """A data source could not be loaded (missing file, missing array, bad shapes or values)."""


@dataclass(frozen=True)
class Dataset:
    """Arrays of one data source, split three ways.

    ``x_*`` are float32 ``(N, *input_shape)``; ``y_*`` are int64 class indices
    (classification) or float32 values ``(N,)``/``(N, T)`` (regression). ``x_test``/``y_test``
    are ``None`` in the copy a search sees.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_outputs: int  # classes, or regression targets
    task: str = "classification"  # classification | regression
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Classes of a classification set (its output size)."""
        return self.num_outputs

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
        return {
            "name": self.name,
            "task": self.task,
            "shapes": shapes,
            "dtype": str(self.x_train.dtype),
            "sha256": h.hexdigest(),
        }


def load(
    cfg: Mapping[str, Any], task: str | None = None, resolve: Callable[[str], Callable[..., Any]] | None = None
) -> Dataset:
    """Load the data set a sweep's ``data`` section describes.

    Args:
        cfg: the resolved ``data`` section: ``name``, ``val_fraction`` in (0, 1),
            ``split_seed`` and the source's own options (see ``SOURCE_OPTIONS``).
        task: ``classification`` or ``regression``; None: the targets decide (integers:
            classes; floats or (N, T): regression).
        resolve: turns ``"package.module:function"`` into the function (default: import it).

    Raises:
        DataError: the source cannot be loaded or its arrays are unusable; the message names
            the file or array and, for a bad value, its first index.
    """
    from . import sources

    name = str(cfg["name"])
    opts = {**SOURCE_OPTIONS.get(name, {}), **{k: v for k, v in cfg.items() if k not in _COMMON}}
    if name == "digits":
        arrays = sources.digits()
    elif name == "diabetes":
        arrays = sources.diabetes()
    elif name == "mnist1d":
        arrays = sources.mnist1d(**opts)
    elif name == "synthetic":
        arrays = sources.synthetic(**opts)
    elif name == "regression":
        arrays = sources.regression(**opts)
    elif name == "npz":
        arrays = sources.npz(opts["path"])
    elif ":" in name:
        arrays = sources.from_function(name, opts.get("kwargs") or {}, resolve or sources.import_function)
    else:
        raise DataError(f"unknown data source {name!r}: one of {', '.join(SOURCES)} or 'package.module:function'")
    source = str(opts["path"]) if name == "npz" else name  # problems name the file
    return _split(source, *arrays, float(cfg.get("val_fraction", 0.2)), int(cfg.get("split_seed", 0)), task)


_COMMON = ("name", "val_fraction", "split_seed")


def _split(
    name: str, x: Any, y: Any, xt: Any, yt: Any, val_fraction: float, split_seed: int, task: str | None
) -> Dataset:
    x, y, xt, yt, task = check_arrays(name, x, y, xt, yt, task)
    n_val = int(round(len(x) * val_fraction))
    if not 1 <= n_val < len(x):
        raise DataError(f"{name}: val_fraction {val_fraction} leaves no train or no val samples of {len(x)}")
    order = np.random.default_rng(split_seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    if task == "classification":
        num_outputs = int(max(y.max(), yt.max())) + 1
    else:
        num_outputs = 1 if y.ndim == 1 else int(y.shape[1])
    return Dataset(name, x[train], y[train], x[val], y[val], xt, yt, num_outputs, task)


def check_arrays(name: str, x: Any, y: Any, xt: Any, yt: Any, task: str | None = None) -> tuple[Any, ...]:
    """The four arrays as float32 inputs and typed targets, and the task, after every check.

    Raises:
        DataError: naming the array, the rule and (for a value) its first bad index.
    """
    out = []
    for key, a in zip(NPZ_KEYS, (x, y, xt, yt)):
        try:
            a = np.asarray(a)
        except Exception as e:  # ragged lists and other things numpy cannot hold
            raise DataError(f"{name}: {key}: not an array ({type(e).__name__})") from None
        if a.dtype.kind not in "biuf":
            raise DataError(f"{name}: {key}: must hold numbers, not {a.dtype} values")
        if a.ndim == 0:
            raise DataError(f"{name}: {key}: must have one row per sample, not be a single value")
        if len(a) == 0:
            raise DataError(f"{name}: {key}: is empty (no samples)")
        out.append(a)
    x, y, xt, yt = out
    if x.size + y.size + xt.size + yt.size > MAX_ELEMENTS:
        raise DataError(f"{name}: more than {MAX_ELEMENTS} values in all: too large to hold in memory")
    if len(x) != len(y) or len(xt) != len(yt):
        raise DataError(f"{name}: x and y differ in length (train {len(x)} vs {len(y)}, test {len(xt)} vs {len(yt)})")
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"{name}: x_train: inputs must be (N, F), (N, C, L) or (N, C, H, W), got {x.shape}")
    if x.shape[1:] != xt.shape[1:]:
        raise DataError(f"{name}: train inputs {x.shape[1:]} and test inputs {xt.shape[1:]} differ in shape")
    if int(np.prod(x.shape[1:])) == 0:
        raise DataError(f"{name}: x_train: inputs {x.shape[1:]} have no features")
    for key, a in (("x_train", x), ("x_test", xt), ("y_train", y), ("y_test", yt)):
        _finite(name, key, a)
    if y.ndim != yt.ndim or y.shape[1:] != yt.shape[1:] or y.ndim > 2:
        raise DataError(f"{name}: y_train {y.shape[1:]} and y_test {yt.shape[1:]} must both be (N,) or (N, T)")
    if y.ndim == 2 and y.shape[1] == 0:  # every loss of it is NaN: each trial "diverged", the data's fault
        raise DataError(f"{name}: y_train: targets {y.shape} have no columns (T must be at least 1)")
    integral = y.dtype.kind in "biu" and yt.dtype.kind in "biu"
    if task is None:
        task = "classification" if integral and y.ndim == 1 else "regression"
    if task == "classification":
        for key, labels in (("y_train", y), ("y_test", yt)):
            if labels.ndim != 1:
                raise DataError(f"{name}: {key}: class labels must be (N,), got {labels.shape}")
            bad = np.flatnonzero((labels < 0) | (labels >= MAX_CLASSES) | (labels != np.round(labels)))
            if len(bad):
                raise DataError(
                    f"{name}: {key}[{bad[0]}]: {labels[bad[0]].item()!r} is not a class index in [0, {MAX_CLASSES})"
                )
        return x.astype(np.float32), y.astype(np.int64), xt.astype(np.float32), yt.astype(np.int64), task
    return x.astype(np.float32), y.astype(np.float32), xt.astype(np.float32), yt.astype(np.float32), task


def _finite(name: str, key: str, a: np.ndarray) -> None:
    if a.dtype.kind == "f":
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(a.astype(np.float32, copy=False)) if a.dtype.itemsize > 4 else ~np.isfinite(a)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            at = index[0] if len(index) == 1 else index
            raise DataError(
                f"{name}: {key}[{at}]: {a[index].item()!r} must be finite (no NaN or infinity; "
                f"{int(bad.sum())} such values, or beyond float32's range)"
            )


EXTREME = 1e6  # inputs beyond this in magnitude: unscaled data, the usual cause of a diverging training


def extreme_value(data: Dataset, limit: float = EXTREME) -> str | None:
    """Where the training inputs (or regression targets) hold their largest value, when it is
    beyond ``limit`` in magnitude: ``"x_train[12, 3] = 3e+30"``; None when every value is
    within it. A diverging training on such data is the data's fault, not the configuration's."""
    keys = ("x_train", "x_val") + (("y_train", "y_val") if data.task == "regression" else ())
    worst: tuple[float, str] | None = None
    for key in keys:
        a = getattr(data, key)
        if a is None or a.size == 0 or a.dtype.kind not in "fiu":
            continue
        flat = int(np.argmax(np.abs(a)))
        index = np.unravel_index(flat, a.shape)
        value = float(a[index])
        if abs(value) > limit and (worst is None or abs(value) > worst[0]):
            at = ", ".join(str(int(i)) for i in index)
            worst = (abs(value), f"{key}[{at}] = {value:.3g}")
    return worst[1] if worst else None
