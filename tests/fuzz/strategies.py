"""Hypothesis strategies for hostile input: values a hostile or careless user writes, and
mutations of a valid document (a sweep, an export, a run directory's JSON) at random places."""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import strategies as st

# Strings that have broken tools before: paths out of a folder, code references, control
# characters, YAML's own special words, huge or empty text.
NASTY_STRINGS = [
    "",
    " ",
    ".",
    "..",
    "../../x",
    "../" * 20 + "etc/passwd",
    "/abs/path",
    "/proc/self/mem",
    "a" * 300,
    "x\x00y",
    "\u202e\u0000",
    "os:system",
    "subprocess:run",
    "builtins:exec",
    "nomodule_xyz:fn",
    "tests.fixtures_data:not_a_module",
    "~",
    "$HOME",
    "%s%s%n",
    ".inf",
    "-.inf",
    ".nan",
    "1e999",
    "NaN",
    "null",
    "yes",
    "0x10",
    "1_000",
    "s3://",
    "file:///etc",
    "mlp",
    "cnn",
    "max",
    "min",
    "sideways",
    "val_acc",
    "grid",
    "tpe",
    "log_uniform",
    "one_minus_log_uniform",
    "int_uniform",
]
NASTY_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2,
    3,
    10**9,
    10**12,
    10**30,
    2**63,
    -(2**63) - 1,
    1e30,
    1e300,
    -1e300,
    1e-320,
    0.5,
    0.999999,
    1.0,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NASTY_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)
    ),
    max_leaves=8,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested document: key paths through mappings and list indices."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            out += paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_mutations: int = 3) -> Any:
    """``doc`` with 1..``max_mutations`` changes: a value replaced by a hostile one, a key
    removed, an unknown key added, or a duplicate of a neighbour's value moved in."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        places = paths(out)
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = _parent(out, path)
        action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add", "swap"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "nmae", "lr", "epochs", "search", "x" * 50]))] = draw(values)
        elif action == "swap":
            other = draw(st.sampled_from(places))
            try:
                parent[path[-1]] = copy.deepcopy(_parent(out, other)[other[-1]])
            except (KeyError, IndexError, TypeError):
                pass
    return out


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut short, with bytes flipped, or with bytes that are not UTF-8 spliced in."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "garbage", "empty", "repeat"]))
    if kind == "truncate" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flip" and data:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        return bytes(b)
    if kind == "splice":
        i = draw(st.integers(0, len(data)))
        return (
            data[:i] + draw(st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3(", b"\n\t- [", b"{{{", b"&a *a"])) + data[i:]
        )
    if kind == "garbage":
        return draw(st.binary(max_size=2000))
    if kind == "repeat":
        return data * draw(st.integers(2, 5))
    return b""


def examples(n: int) -> int:
    """``n`` examples, ten times as many under ``HYPOTHESIS_PROFILE=deep``."""
    return n * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 1)
