"""Where tuner may write what a user asks for (``-o``, a run directory, ``--storage``): checked
before anything starts, one line naming the flag when it may not.

A system folder (/proc, /sys, /dev) is never written; a folder where a file is wanted (or the
reverse) and a place this process cannot write are refused; ``~`` is expanded; an output that
would overwrite what the command reads is refused (:func:`check_not_input`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from tuner.errors import InputError

_SYSTEM = ("/proc", "/sys", "/dev")


def check_output(path: str | os.PathLike[str], flag: str = "-o", folder: bool = False) -> Path:
    """``path`` as a place tuner may write a file (``folder``: a folder) to, checked before
    anything is started; a link is followed (the file it names is written, the link stays).

    Raises:
        InputError: a folder where a file is wanted (or the reverse), a system folder, or a
            place this process cannot write; one line naming ``flag``.
    """
    raw = os.fspath(path)
    if not raw.strip() or "\x00" in raw:  # Path("") is ".": an empty -o must not mean "here"
        raise InputError(f"{flag}: {raw[:60]!r} is not a path")
    try:
        return _check_output(expand_user(raw, flag), flag, folder)
    except OSError as e:  # a name too long, a loop of links...: what the system says, one line
        raise InputError(f"{flag}: {raw[:200]}: {e.strerror or type(e).__name__}") from None


def expand_user(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded.

    Raises:
        InputError: ``~user`` names no user this system knows (one line naming ``flag``).
    """
    try:
        return Path(path).expanduser()
    except RuntimeError:  # Path.expanduser: "Could not determine home directory"
        head = os.fspath(path).split(os.sep, 1)[0]
        raise InputError(f"{flag}: {os.fspath(path)[:200]}: {head[:60]} is no user's home on this system") from None


def real_path(path: Path, flag: str) -> Path:
    """``path`` with every link followed (:meth:`Path.resolve`), a loop of links being bad input.

    Raises:
        InputError: the links loop (Python raises RuntimeError for that, not OSError), or the
            system refuses the path; one line naming ``flag``.
    """
    try:
        return path.resolve()
    except RuntimeError:  # "Symlink loop from ...": what the shell says for ELOOP
        raise InputError(f"{flag}: {str(path)[:200]}: {os.strerror(errno.ELOOP)}") from None
    except OSError as e:
        raise InputError(f"{flag}: {str(path)[:200]}: {e.strerror or type(e).__name__}") from None


def check_not_input(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], flag: str = "-o") -> None:
    """Refuse an output that would overwrite what the command reads: one of ``inputs``
    (files), or a file that already exists inside one of them (folders: a run directory's
    records). A new file inside a run directory is allowed.

    Raises:
        InputError: one line naming ``flag``, the path and the input it would overwrite.
    """
    from tuner.storage import is_uri  # storage imports this module

    out = expand_user(output, flag)
    target = real_path(out, flag)
    for given in inputs:
        if is_uri(os.fspath(given)):
            continue
        try:
            source = expand_user(given, "input").resolve()
        except (OSError, RuntimeError):  # an input that cannot be resolved is not what -o names
            continue
        if target == source:
            raise InputError(f"{flag}: {os.fspath(output)[:200]}: is the file this command reads; write elsewhere")
        if source.is_dir() and source in target.parents and target.is_file():
            raise InputError(
                f"{flag}: {os.fspath(output)[:200]}: would overwrite a file of {os.fspath(given)[:200]}, which this "
                "command reads; write elsewhere"
            )


def _check_output(p: Path, flag: str, folder: bool) -> Path:
    text = str(p)
    resolved = real_path(p, flag)
    link = not folder and p.is_symlink()
    p = resolved if link else p  # written where the link points, as `>` does
    if link and not p.parent.is_dir():  # `>` creates no folder, least of all where a link points
        raise InputError(f"{flag}: {text[:200]}: a link to {str(p)[:200]}, whose folder does not exist")
    if any(resolved == Path(s) or Path(s) in resolved.parents for s in _SYSTEM):
        raise InputError(f"{flag}: {text[:200]}: tuner does not write under {', '.join(_SYSTEM)}")
    if folder:
        if p.exists() and not p.is_dir():
            raise InputError(f"{flag}: {text[:200]}: exists and is not a folder")
    elif p.is_dir():
        raise InputError(f"{flag}: {text[:200]} is a folder; give a file name")
    parent = p if folder and p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag}: {text[:200]}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: {text[:200]}: no permission to write in {parent}")
    return p
