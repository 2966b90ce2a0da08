"""Re-testing an export's best configurations with fresh seeds, now and then.

A single lucky seed misleads, and data, code and hardware drift. ``tuner retest EXPORT``
runs each of the export's top-k configurations to its full budget with N fresh seeds
(``run.seed``), all in parallel on the Ray cluster, with the data's held-out test split in
``run.data``: the built-in trainer reports ``test_*`` metrics on its last epoch, and so may a
user's function. Configurations are ranked by the mean of the sweep's metric; it and every
``test_*`` metric get a standard deviation and a 95% confidence interval (Student's t).

It then says plainly:

- **ranking changed**: the previous best (the last retest's, or the search's for a first
  retest) is no longer best beyond noise -- the new best's interval lies wholly beyond it;
- **drift**: the best's mean got worse than at the last retest by more than ``tolerance``
  (metric units, in the metric's own direction): the data, the code or the environment moved.

Each retest appends one JSON line to ``<export>.retest.jsonl`` beside the export and
rewrites the export atomically: its ``top`` re-ordered by the retest, ``params``/``config``/
``score`` following the new best, and a ``retest:`` section holding this retest. The
statistics and both verdicts are :mod:`tuner.verdict`'s.
"""

from __future__ import annotations

import copy
import errno
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuner import arguments, datasets
from tuner import export_file as export_mod
from tuner.errors import InputError, RunError, printable
from tuner.files import append_line, read_json_lines
from tuner.lock import locked
from tuner.outputs import check_output
from tuner.records import RetestEntry, TopEntry, history_path, now
from tuner.spec import Sweep, from_dict
from tuner.verdict import describe, summarize, updated_export

DEFAULT_SEEDS = 3
# The most fresh seeds a configuration is re-tested with: each is a full training, and the
# interval a handful of seeds gives narrows only as their square root.
MAX_RETEST_SEEDS = 1000
# The largest retest history read: a line a retest, a few KB each; more is no history of ours.
MAX_HISTORY_BYTES = 64 * 1024 * 1024
DEFAULT_TOLERANCE = 0.02
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
MAX_EVERY_S = 365 * 86400  # a year: more is no schedule (and far more overflows time.sleep)


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h`` or ``1d``.

    Raises:
        InputError: not of that form, zero, or longer than a year (:data:`MAX_EVERY_S`).
    """
    m = _DURATION.match(text.strip()) if len(text) < 40 else None
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m else 0.0
    if not 0 < seconds <= MAX_EVERY_S:
        raise InputError(f"--every: {text[:40]!r} must be a positive duration like 30s, 15m, 12h or 1d, at most 365d")
    return seconds


def sweep_with_data(
    config: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None, base_dir: str | Path | None = None
) -> Sweep:
    """An export's ``config`` as a validated sweep, with ``data`` overrides applied
    (problems name the overridden key as ``--data KEY``)."""
    raw = copy.deepcopy(dict(config))
    if overrides:
        data = dict(raw.get("data") or {})
        if "name" in overrides and overrides["name"] != data.get("name"):  # another source: drop the old options
            data = {k: v for k, v in data.items() if k in ("val_fraction", "split_seed")}
        data.update(overrides)
        raw["data"] = data
        if isinstance(overrides.get("path"), str):
            _check_readable(overrides["path"], source, base_dir)
    try:
        return from_dict(raw, source=source, base_dir=base_dir)
    except InputError as e:
        if not overrides:
            raise
        raise InputError(
            [line.replace(": config: data.", ": --data ", 1).replace(": data.", ": --data ", 1) for line in e.problems]
        ) from None


def _check_readable(path: str, source: str, base_dir: str | Path | None) -> None:
    """Refuse a ``--data path`` that is there but cannot be read (a loop of links), with what
    the system says, instead of the sweep's "no such file".

    Raises:
        InputError: one line naming ``--data path`` and the system's reason.
    """
    p = Path(path)
    candidates = [p] if p.is_absolute() or base_dir is None else [p, Path(base_dir) / p]
    for c in candidates:
        if not os.path.lexists(c):
            continue
        try:
            os.stat(c)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EACCES, errno.ENAMETOOLONG, errno.ENOTDIR):
                raise InputError(f"{source}: --data path: {path[:200]!r}: cannot read ({e.strerror})") from None
        return


def read_history(export_path: str | Path) -> list[RetestEntry]:
    """Every earlier retest of this export, oldest first (a damaged line is skipped).

    Raises:
        InputError: the history beside the export is not a regular file (a pipe would wait
            forever), cannot be read, or is larger than :data:`MAX_HISTORY_BYTES`.
    """
    path = history_path(export_path)
    try:
        lines = read_json_lines(path, errors="replace", limit=MAX_HISTORY_BYTES)
    except FileNotFoundError:
        return []
    except OSError as e:  # a folder, no permission...
        raise InputError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    out = []
    for line in lines:
        try:
            out.append(RetestEntry.from_dict(line, str(path)))
        except InputError:
            continue
    return out


def check_writable(export_path: str | Path) -> Path:
    """Refuse, before anything is trained, an export whose file or history (beside it) this
    process could not rewrite: a read-only folder would only fail once every seed had run.

    Returns:
        The file to rewrite: the export, or the file it links to (followed as ``>`` does: the
        link stays a link, and the history is kept beside the file written).

    Raises:
        InputError: one line naming the export (or its history) and the folder.
    """
    target = check_output(export_path, "EXPORT")
    history = history_path(target)
    if history.is_dir():
        raise InputError(f"{history}: the retest history of {export_path} is a folder, not a file; move it away")
    check_output(history, "retest history")
    return target


def fresh_seeds(n: int, avoid: set[int]) -> list[int]:
    """``n`` random seeds never used before by the search or an earlier retest."""
    rng = random.SystemRandom()
    seeds: dict[int, None] = {}  # drawn, in order
    while len(seeds) < n:
        s = rng.randrange(1, 2**31 - 1)
        if s not in avoid:
            seeds[s] = None
    return list(seeds)


def retest(
    export_path: str | Path,
    seeds: int = DEFAULT_SEEDS,
    top_k: int | None = None,
    data: Mapping[str, Any] | None = None,
    address: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    write: Callable[[str], None] = print,
) -> RetestEntry:
    """Re-test an export's top-k configurations with ``seeds`` fresh seeds each.

    Args:
        export_path: the export file (YAML or JSON); rewritten atomically with the result.
        seeds: fresh seeds per configuration (>= 2: an interval needs two).
        top_k: how many of the export's ``top`` to re-test (default: all of them).
        data: overrides of the ``data`` section, e.g. ``{"seed": 7}`` or
            ``{"name": "npz", "path": "new.npz"}``: re-test on a new data snapshot.
        address: the Ray cluster to run on (None: a local instance).
        tolerance: a drop of the best's mean score beyond this (metric units) since the last
            retest is flagged as drift.

    Returns:
        The retest entry (also appended to the history and stored in the export).

    Raises:
        InputError: a bad export file, argument or data override (nothing run or written).
        RunError: a seed's training failed (its error named; nothing written).
    """
    from tuner import usercode
    from tuner.ray import cluster, joining
    from tuner.ray.worker import run_tasks, seed_task

    arguments.integer(seeds, "--seeds", 2, MAX_RETEST_SEEDS, why=" (a confidence interval needs two seeds)")
    arguments.optional_integer(top_k, "--top-k", 1)
    tolerance = arguments.number(tolerance, "--tolerance", low=0)
    data = arguments.mapping(data, "--data")
    export, _ = export_mod.load(export_path)
    target = check_writable(export_path)  # a link's file: what is rewritten, and where its history is
    history = read_history(target)  # before any work: a history that cannot be read is said now
    base_dir = Path(export_path).parent
    sweep = sweep_with_data(export.config, f"{export_path}: config", data, base_dir)
    dataset = datasets.load(sweep)
    candidates = list(export.top) or [TopEntry(params=export.params, score=export.score)]
    candidates = candidates[:top_k] if top_k else candidates
    configs = [
        export_mod.check_params(c.params, sweep, f"{export_path}: top[{i}].params", base_dir).base_config()
        for i, c in enumerate(candidates)
    ]
    used = {sweep.seed} | {int(s) for h in history for s in h.seeds if isinstance(s, int)}
    seed_list = fresh_seeds(seeds, used)
    calls = [
        {
            "function": sweep.trainer,
            "config": cfg,
            "seed": s,
            "metric": sweep.metric,
            "mode": sweep.mode,
            "max_t": sweep.max_t,
        }
        for cfg in configs
        for s in seed_list
    ]
    usercode.add_to_path(sweep.base_dir)
    resources = cluster.connect(
        joining.resolve(address), runtime_env=usercode.runtime_env(sweep.code_refs(), sweep.base_dir) or None
    )
    budget = f"{sweep.max_t} epochs" if sweep.max_t else "its full budget"
    write(
        printable(
            f"retest {export_path}: {len(candidates)} configurations x {seeds} fresh seeds ({len(calls)} trainings of "
            f"{budget}) on {resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs"
        )
    )
    started = time.monotonic()
    done = [0]

    def progress(index: int, result: dict[str, Any]) -> None:
        done[0] += 1
        write(f"[{time.monotonic() - started:5.0f}s] {done[0]}/{len(calls)} done")

    results = run_tasks(
        seed_task, calls, shared={"data": dataset}, cpu=sweep.resources.cpu, gpu=sweep.resources.gpu, on_result=progress
    )
    errors = list(dict.fromkeys(r["error"] for r in results if "error" in r))
    if errors:
        raise RunError(
            f"retest {export_path}: {sum('error' in r for r in results)} of {len(results)} trainings "
            "failed; nothing was written",
            errors,
        )
    seconds = time.monotonic() - started
    fp = datasets.fingerprint(dataset)
    with locked(target):  # another retest may have ended meanwhile: its history line and section count
        history = read_history(target)
        export, _ = export_mod.load(export_path, check_code=False)
        entry = summarize(candidates, seed_list, results, sweep.metric, sweep.mode, history, export, tolerance)
        entry.created = now()
        entry.seconds = seconds
        entry.top_k = len(candidates)
        entry.data = {"overrides": dict(data or {}), "fingerprint": fp}
        last_fp = (history[-1].data.get("fingerprint") or {}).get("sha256") if history else None
        if last_fp not in (None, (fp or {}).get("sha256")):
            entry.messages.append("the data differs from the last retest's (fingerprint changed)")
        append_line(history_path(target), entry.to_dict())
        export_mod.write(updated_export(export, entry), target)
    for line in describe(entry):
        write(line)
    return entry
