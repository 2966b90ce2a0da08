"""The console streams of the ``tuner`` command, kept writable when their reader goes away.

``tuner run ... | head`` closes the pipe after ten lines; a closed terminal (SIGHUP) fails
every later write with EIO. Neither is a reason for a sweep to fail, or for the command to end
on a traceback while it records an interruption: :func:`guard` wraps ``sys.stdout`` and
``sys.stderr`` so that the first failed write points the stream's descriptor at ``/dev/null``
(later lines, the summary included, are dropped quietly) and the command goes on.

What failed is remembered (:attr:`Guarded.error`): a command that streams its output in a loop
(``space``, ``report --watch``, ``retest --every``) stops once its output is gone
(:func:`output_lost`), and a command's output that could not be written for another reason
than a reader gone (a full disk, an I/O error, a closed stdout) ends it with one line and exit
1 (:func:`output_error`), never as a success nor as a bug of tuner's. A descriptor closed at
the start (``tuner ... >&-``) is pointed at ``/dev/null``, so that no file tuner or Ray opens
later takes its number and receives the console's lines.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, TextIO


class Guarded:
    """``stream``, whose writes never raise ``OSError`` (see the module). ``closed``: the
    stream it stands for was closed when the process started (``stream`` leads to
    ``/dev/null``), so its first write fails as ``EBADF``."""

    def __init__(self, stream: TextIO, closed: bool = False) -> None:
        self._stream = stream
        self._closed = closed
        self.lost = False
        self.error: OSError | None = None  # the first failed write's

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                if self._closed:
                    raise OSError(errno.EBADF, os.strerror(errno.EBADF))
                return self._stream.write(text)
            except OSError as e:
                self._lose(e)
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError as e:
                self._lose(e)

    def isatty(self) -> bool:
        try:
            return not self.lost and not self._closed and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @property
    def reader_gone(self) -> bool:
        """Whether the output was lost because its reader went away (a closed pipe: EPIPE)."""
        return self.error is not None and self.error.errno == errno.EPIPE

    def _lose(self, error: OSError) -> None:
        self.lost, self.error = True, error
        if self._closed:
            return
        try:  # what is still buffered, and whatever writes to the descriptor, goes nowhere
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


def guard() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once) in :class:`Guarded`; one closed at the
    start (None) stands for ``/dev/null`` held on its descriptor, and fails its first write."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, Guarded(_hold(fd), closed=True))
        elif not isinstance(stream, Guarded):
            setattr(sys, name, Guarded(stream))


def _hold(fd: int) -> TextIO:
    """A stream on ``/dev/null``, on descriptor ``fd`` when that is closed (no file opened later
    takes its number)."""
    try:
        os.fstat(fd)
    except OSError:  # closed: held
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            return open(fd, "w", encoding="utf-8", closefd=False)  # the process's stream
        except OSError:
            pass
    return open(os.devnull, "w", encoding="utf-8")  # something took the number: left alone


def output_lost() -> bool:
    """Whether the command's output (``sys.stdout``) can no longer be written: a command that
    streams it in a loop stops."""
    return bool(getattr(sys.stdout, "lost", False))


def output_error() -> OSError | None:
    """Why the command's output (``sys.stdout``) could not be written, when not because its
    reader went away (which is no failure: ``tuner space ... | head``); None when it was (or
    when it was written)."""
    out = sys.stdout
    if out is not None:
        try:
            out.flush()  # a redirected file's lines are buffered: a full disk fails here
        except (OSError, ValueError):  # not guarded (in process): as a reader gone
            return None
    if not isinstance(out, Guarded) or out.error is None or out.reader_gone:
        return None
    return out.error
