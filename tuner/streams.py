"""The console streams of the ``tuner`` command, kept writable when their reader goes away.

``tuner run ... | head`` closes the pipe after ten lines; a closed terminal (SIGHUP) fails
every later write with EIO. Neither is a reason for a sweep to fail, or for the command to end
on a traceback while it records an interruption: :func:`guard` wraps ``sys.stdout`` and
``sys.stderr`` so that the first failed write points the stream's descriptor at ``/dev/null``
(later lines, the summary included, are dropped quietly) and the command goes on.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class Guarded:
    """``stream``, whose writes never raise ``OSError`` (see the module)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._stream.write(text)
            except OSError:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError:
                self._lose()

    def isatty(self) -> bool:
        try:
            return not self.lost and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _lose(self) -> None:
        self.lost = True
        try:  # what is still buffered, and whatever writes to the descriptor, goes nowhere
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


def guard() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once) in :class:`Guarded`."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Guarded):
            setattr(sys, name, Guarded(stream))
