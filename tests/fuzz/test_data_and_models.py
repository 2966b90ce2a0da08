"""Fuzzing what a run trains on and what it leaves: ``.npz`` data files (``run`` up to where
Ray would start: the data is loaded and checked before) and model files (``evaluate``: a
crafted ``torch.save`` of a dict). A data file is refused with the array and the first bad
index; a model file is data and never runs code it names."""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import tiny_sweep
from tests.fuzz.harness import RAY_REACHED, check, count, run_cli, scratch
from tests.fuzz.strategies import NASTY_STRINGS, damaged_bytes, examples, mutated, values
from tuner.files import write_bytes
from tuner.final import MODEL_FORMAT
from tuner.models import build_model

pytestmark = pytest.mark.usefixtures("without_ray")

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _sweep(root: Path, npz: str) -> None:
    doc = tiny_sweep(**{"data": {"name": "npz", "path": npz}, "search.num_samples": 2})
    (root / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _run(root: Path) -> str:
    o = run_cli(["run", "s.yaml", "--storage", "runs", "--quiet"], root)
    check(o)
    assert o.rc == 2 and not (root / "runs").exists(), o.text()
    return o.err


arrays = hnp.arrays(
    dtype=st.sampled_from(
        [np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64, "U3", "S2"]
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6),
)


@settings(max_examples=examples(40))
@given(
    parts=st.fixed_dictionaries({k: st.one_of(st.none(), arrays) for k in KEYS}),
    extra=st.booleans(),
)
def test_npz_files_of_any_arrays(parts: dict[str, Any], extra: bool) -> None:
    count("7 bad data accepted", "generated arrays")
    root = scratch()
    kept = {k: v for k, v in parts.items() if v is not None}
    if extra:
        kept["junk"] = np.zeros(3)
    np.savez(root / "d.npz", **kept)
    _sweep(root, "d.npz")
    _run(root)


def _good(n: int = 60, f: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return {"x_train": x, "y_train": y, "x_test": x[:20], "y_test": y[:20]}


def _npz_bytes(arrs: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrs)
    return buf.getvalue()


@settings(max_examples=examples(20))
@given(data=damaged_bytes(_npz_bytes(_good())))
def test_damaged_npz_bytes(data: bytes) -> None:
    count("5 tracebacks instead of one line", "damaged .npz")
    root = scratch()
    (root / "d.npz").write_bytes(data)
    _sweep(root, "d.npz")
    _run(root)


def _with(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = _good()
    out[key] = value
    return out


G = _good()
NAN_AT = G["x_train"].copy()
NAN_AT[7, 2] = np.nan
NPZ_CASES: dict[str, Any] = {
    "NaN feature": (_with("x_train", NAN_AT), "x_train[(7, 2)]"),
    "infinite feature": (_with("x_test", np.full((20, 4), np.inf)), "x_test[(0, 0)]"),
    "beyond float32": (_with("x_train", G["x_train"].astype(np.float64) * 1e300), "x_train"),
    "label of 10^9": (_with("y_train", np.where(np.arange(60) == 5, 10**9, G["y_train"])), "y_train[5]"),
    "negative label": (_with("y_test", -G["y_test"] - 1), "y_test[0]"),
    "zero features": ({**G, "x_train": np.zeros((60, 0)), "x_test": np.zeros((20, 0))}, "no features"),
    "empty test split": ({**G, "x_test": G["x_test"][:0], "y_test": G["y_test"][:0]}, "x_test"),
    "0-d array": (_with("x_train", np.array(3.0)), "x_train"),
    "string labels": (_with("y_train", np.array(["a"] * 60)), "y_train"),
    "complex inputs": (_with("x_train", G["x_train"].astype(np.complex64)), "x_train"),
    "five dimensions": (_with("x_train", np.zeros((60, 1, 1, 2, 2))), "x_train"),
    "lengths differ": (_with("y_train", G["y_train"][:10]), "differ in length"),
    "a missing array": ({k: v for k, v in G.items() if k != "y_test"}, "y_test"),
    "object array": (None, "not a readable .npz"),
    "0-byte file": (b"", "not a readable .npz"),
    "garbage": (bytes(range(256)) * 20, "not a readable .npz"),
    "a zip of the wrong members": ("zip", "missing arrays"),
    "a single .npy": ("npy", "single .npy"),
}


@pytest.mark.parametrize("label", list(NPZ_CASES))
def test_each_class_of_bad_data(label: str) -> None:
    count("7 bad data accepted", label)
    root = scratch()
    content, expected = NPZ_CASES[label]
    path = root / "d.npz"
    if isinstance(content, dict):
        np.savez(path, **content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x_train.npy", b"\x00" * 100)
    elif content == "npy":
        np.save(root / "d.npy", G["x_train"])
        (root / "d.npy").rename(path)
    else:
        np.savez(path, **_with("x_train", np.array([{"a": 1}] * 60, dtype=object)))
    _sweep(root, "d.npz")
    err = _run(root)
    assert RAY_REACHED not in err and expected in err, err


DATA_FUNCTIONS = """
import numpy as np
def raises(**kw): raise ValueError("boom\\nsecond line")
def garbage(**kw): return 42
def partial(**kw): return {"x_train": 1}
def ragged(**kw): return {"x_train": [[1], [1, 2]], "y_train": [1, 2], "x_test": [[1]], "y_test": [1]}
def exits(**kw): raise SystemExit(3)
def base_exception(**kw): raise GeneratorExit
def memory(**kw): raise MemoryError
def nan(**kw):
    x = np.ones((40, 3)); x[4, 1] = np.nan
    return {"x_train": x, "y_train": np.zeros(40, int), "x_test": x[:5], "y_test": np.zeros(5, int)}
"""


@pytest.mark.parametrize("fn", ["raises", "garbage", "partial", "ragged", "exits", "base_exception", "memory", "nan"])
def test_a_data_function_that_raises_or_returns_garbage(fn: str) -> None:
    count("5 tracebacks instead of one line", f"data function {fn}")
    root = scratch()
    (root / "fuzzdata.py").write_text(DATA_FUNCTIONS)
    doc = tiny_sweep(**{"data": {"name": f"fuzzdata:{fn}"}})
    (root / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    err = _run(root)
    assert RAY_REACHED not in err and f"fuzzdata:{fn}" in err, err
    o = run_cli(["try", "s.yaml", "--epochs", "1"], root)
    check(o)
    assert o.rc == 2, o.text()


# -- model files ---------------------------------------------------------------------------


def _payload() -> dict[str, Any]:
    """A model file's content as ``tuner train`` writes it, for a tiny MLP on synthetic data
    (built, not trained: what is fuzzed is reading it)."""
    from tuner.spec import from_dict

    sweep = from_dict(tiny_sweep(**{"data.n_samples": 60}), source="tiny.yaml")
    torch.manual_seed(0)
    model = build_model(sweep.config["model"], (8,), 3)
    return {
        "format": MODEL_FORMAT,
        "config": sweep.to_dict(),
        "params": {"train.lr": 0.05},
        "input_shape": [8],
        "num_outputs": 3,
        "state_dict": {k: v.detach() for k, v in model.state_dict().items()},
        "metrics": {"test_acc": 0.5, "test_loss": 1.0},
        "data": {"sha256": "x"},
        "versions": {},
        "created": "2026-01-01",
        "task": "classification",
    }


PAYLOAD = _payload()
CANARY = "fuzz_canary_module"


def _evaluate(root: Path, payload: Any, *flags: str) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes(root / "m.pt", buf.getvalue())
    (root / f"{CANARY}.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('IMPORTED').write_text('x')\ndef fn(*a, **k): return None\n"
    )
    o = run_cli(["evaluate", "m.pt", *flags], root)
    check(o)
    assert not (root / "IMPORTED").exists(), f"a model file made tuner import its code\n{o.text()}"


_plain = mutated({k: v for k, v in PAYLOAD.items() if k != "state_dict"}, max_mutations=3)


@settings(max_examples=examples(30))
@given(meta=_plain, code=st.sampled_from([None, "model", "data", "function", "kwargs"]))
def test_crafted_model_files(meta: dict[str, Any], code: str | None) -> None:
    count("1 code execution from a model file", "crafted model file")
    root = scratch()
    payload = {**meta, "state_dict": PAYLOAD["state_dict"]}
    config = payload.get("config")
    if code and isinstance(config, dict):
        ref = f"{CANARY}:fn"
        section = config.setdefault("model" if code in ("model", "kwargs") else "data", {})
        if code == "function":
            config["function"] = ref
        elif isinstance(section, dict):
            section["name"] = ref
    _evaluate(root, payload)


@settings(max_examples=examples(20))
@given(
    key=st.sampled_from(sorted(PAYLOAD["state_dict"])),
    shape=st.lists(st.integers(0, 5), max_size=3),
    fill=st.sampled_from([0.0, float("nan"), float("inf"), 1e30]),
)
def test_model_files_with_mismatched_weights(key: str, shape: list[int], fill: float) -> None:
    count("5 tracebacks instead of one line", "mismatched weights")
    root = scratch()
    payload = copy.copy(PAYLOAD)
    payload["state_dict"] = {**PAYLOAD["state_dict"], key: torch.full(shape, fill)}
    _evaluate(root, payload)


MODEL_CASES: dict[str, Any] = {
    "model.name names code": ("config.model.name", f"{CANARY}:fn"),
    "data.name names code": ("config.data.name", f"{CANARY}:fn"),
    "a huge hidden layer": ("config.model.hidden", [10**6, 10**6]),
    "a huge input shape": ("input_shape", [10**7, 10**7, 10]),
    "a billion outputs": ("num_outputs", 10**9),
    "a NaN output count": ("num_outputs", float("nan")),
    "an input shape of text": ("input_shape", "abc"),
    "regression targets of text": ("target_mean", "x"),
    "no weights": ("state_dict", {}),
    "weights of text": ("state_dict", {"a": "b"}),
    "not a mapping": (None, [1, 2]),
    "another format": ("format", "tuner-model/1"),
}


@pytest.mark.parametrize("label", list(MODEL_CASES))
def test_each_class_of_hostile_model_file(label: str) -> None:
    count("1 code execution from a model file", label)
    root = scratch()
    key, value = MODEL_CASES[label]
    payload: Any = copy.deepcopy(PAYLOAD)
    if key is None:
        payload = value
    else:
        node = payload
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    _evaluate(root, payload)
    _evaluate(root, payload, "--device", "cuda")  # no CUDA here: one line; with one, the same checks


def test_model_files_that_are_not_model_files() -> None:
    count("1 code execution from a model file", "foreign files")
    root = scratch()
    for content in (b"", bytes(range(256)), b"PK\x03\x04" + b"\x00" * 100):
        (root / "m.pt").write_bytes(content)
        check(run_cli(["evaluate", "m.pt"], root))
    for text in NASTY_STRINGS[:12]:
        if text and "\x00" not in text:
            check(run_cli(["evaluate", text], root))
    assert values is not None
