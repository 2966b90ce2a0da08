"""What Ray and Ray Tune import and a run never uses, loaded on first use: pandas, Ray Data,
``requests`` and ``jsonschema``.

``import ray.tune`` imports pandas (as a check that it is installed) and Ray Data (``ray.air``
imports it "to avoid a circular import"): ~0.4 s of CPU on a laptop core. ``import ray``
imports ``requests`` (to ask a cloud's metadata server for a TPU) and ``jsonschema`` (to check
a runtime environment's plugins): ~0.1 s more. Every process of a run pays that before its
first trial, the driver and each trial process alike (BENCHMARKS.md i), and a run reads no data
frame, no Ray Dataset, asks no metadata server and checks no plugin schema. Importing this
module installs an import hook under which each of :data:`DEFERRED` is a module object whose
body runs on its first real use: an attribute read (``pandas.DataFrame``), or an import of one
of its submodules. So code that uses them, the user's included, gets the real modules, a moment
later.

It runs in the ``tuner`` command's process (:mod:`tuner.__main__`), in every worker process of
an instance of the command's own before Ray's worker imports ``ray`` (:mod:`tuner.ray.entry`),
and in every worker of ``tuner up``'s instance once it has connected (Ray's
``preload_python_modules``: :mod:`tuner.ray.warm`, which imports all that before any run). It
does not run in a user's own Python process that calls :func:`tuner.run`.

Three module bodies of Ray Tune read an attribute of one of them as they run, and would load
it at once; each gets a stand-in for that one read (:data:`READERS`):

- ``ray.tune.analysis.experiment_analysis``: ``from pandas import DataFrame``, which it only
  calls (``DataFrame()``) and names in annotations: it gets a function that calls pandas';
- ``ray.tune.result_grid``: ``pd.DataFrame`` in a return annotation: the same function;
- ``ray.tune.impl.out_of_band_serialize_dataset``: ``ray.data.Dataset`` in a parameter's
  annotation: a placeholder class. Its context manager, which Tune enters at each save of the
  experiment's state to register a pickler for Ray Datasets, does nothing while Ray Data is
  not loaded: no Dataset can exist before its module has run.

An attribute of a module such as ``__name__``, ``__file__`` or ``__class__``, which tools read
of every loaded module (``inspect.getmodule``, which torch calls as it imports), is answered
without loading it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

DEFERRED = ("pandas", "ray.data", "requests", "jsonschema")

# what a module's loader and the tools that walk sys.modules read: answered without a load
_QUIET = frozenset(("__spec__", "__name__", "__class__", "__file__", "__loader__", "__package__", "__cached__"))


def _data_frame(*args: Any, **kwargs: Any) -> Any:
    """``pandas.DataFrame(*args, **kwargs)``, pandas loaded at the call."""
    return sys.modules["pandas"].DataFrame(*args, **kwargs)


class _DatasetAnnotation:
    """What ``out_of_band_serialize_dataset``'s annotation reads instead of ``ray.data.Dataset``."""


# a module whose body reads a deferred module's attribute -> {deferred module: {attribute: stand-in}}
READERS: dict[str, dict[str, dict[str, Any]]] = {
    "ray.tune.analysis.experiment_analysis": {"pandas": {"DataFrame": _data_frame}},
    "ray.tune.result_grid": {"pandas": {"DataFrame": _data_frame}},
    "ray.tune.impl.out_of_band_serialize_dataset": {"ray.data": {"Dataset": _DatasetAnnotation}},
}
_reading: set[str] = set()  # the readers whose bodies are running now


class _Deferred(types.ModuleType):
    """A deferred module: its body runs, once, on the first read of an attribute not in
    :data:`_QUIET`, under a lock (another thread's read waits for the whole body)."""

    def __getattribute__(self, attr: str) -> Any:
        if attr in _QUIET:
            return object.__getattribute__(self, attr)
        spec = object.__getattribute__(self, "__spec__")
        reader = sys._getframe(1).f_globals.get("__name__")
        if reader in _reading:
            answers = READERS[reader].get(spec.name, {})
            if attr in answers:
                return answers[attr]
            if answers and attr == "__path__":  # ``from pandas import DataFrame``: take it as an attribute
                raise AttributeError(attr)
        state = spec.loader_state
        with state["lock"]:
            if object.__getattribute__(self, "__class__") is _Deferred:
                if state["loading"]:  # read by its own body, or its submodules', as it runs
                    return object.__getattribute__(self, attr)
                state["loading"] = True
                try:
                    spec.loader.exec_module(self)
                finally:
                    state["loading"] = False
                object.__setattr__(self, "__class__", types.ModuleType)
        return getattr(self, attr)


class _Wrapping(importlib.abc.Loader):
    """A loader around the module's own (``loader``), which makes the module object."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)


class _DeferringLoader(_Wrapping):
    """Makes the module and leaves its body for :class:`_Deferred` to run."""

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        spec.loader = module.__loader__ = self.loader  # the real one, as the module will see it
        spec.loader_state = {"lock": threading.RLock(), "loading": False}
        module.__class__ = _Deferred


class _ReaderLoader(_Wrapping):
    """Runs a reader's body with its stand-ins (:data:`READERS`) answered."""

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__spec__.name
        module.__spec__.loader = module.__loader__ = self.loader
        _reading.add(name)
        try:
            self.loader.exec_module(module)
        finally:
            _reading.discard(name)
        if name == "ray.tune.impl.out_of_band_serialize_dataset":
            module.out_of_band_serialize_dataset = _while_data_loaded(module.out_of_band_serialize_dataset)


def _while_data_loaded(serialize: Any) -> Any:
    """Ray Tune's ``out_of_band_serialize_dataset``, entered only once Ray Data is loaded."""

    @contextlib.contextmanager
    def out_of_band_serialize_dataset() -> Iterator[None]:
        if loaded("ray.data"):
            with serialize():
                yield
        else:
            yield

    return out_of_band_serialize_dataset


class _Finder(importlib.abc.MetaPathFinder):
    """Finds :data:`DEFERRED` and :data:`READERS` with the finders after it, and hands each
    to its loader."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in DEFERRED and name not in READERS:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if isinstance(finder, _Finder) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = (_DeferringLoader if name in DEFERRED else _ReaderLoader)(spec.loader)
        return spec


def loaded(name: str) -> bool:
    """Whether module ``name`` is imported and its body has run (not deferred, or used)."""
    module = sys.modules.get(name)
    return module is not None and type(module) is not _Deferred


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (once): it applies to what is imported after."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
