"""What a cloud store's failure says (:mod:`tuner.storage`): its message whole on one line, and
whether it is the environment's problem (the store cannot be reached: :class:`StoreError`, exit
1) or the input's (no such bucket, access denied for the credentials given: exit 2)."""

from __future__ import annotations

import re

from tuner.errors import InputError, RunError, message


class StoreError(RunError):
    """The store of a URI failed: it cannot be reached (before the run, or it went away while
    the run went on), or it refuses this writer during the run: the machine's or the store's
    problem, not the input's nor a bug of tuner's (exit 1)."""


# How pyarrow says (in its message: it raises a plain OSError) that the store did not answer: the
# network, the endpoint, DNS, TLS. Anything else the store answered (access denied, no such bucket).
_UNREACHABLE = re.compile(
    r"NETWORK_CONNECTION|curlCode|Could not connect|Couldn't connect|Failed to connect|Could not resolve|"
    r"Couldn't resolve|Connection refused|timed out|Timeout was reached|SSL connect error",
    re.IGNORECASE,
)
_ACCESS_DENIED = re.compile(
    r"ACCESS_DENIED|AccessDenied|Forbidden|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|"
    r"InvalidAccessKeyId|SignatureDoesNotMatch|Permission denied",
    re.IGNORECASE,
)
# The longest store message quoted: pyarrow's are a few hundred characters; a hostile store's
# (a proxy's HTML page) may be anything. A cut says so ("...").
MAX_CAUSE = 1000


def store_cause(error: BaseException) -> str:
    """What a store's error says, whole, on one line: pyarrow's message (``When getting information
    for bucket 'b': AWS Error NETWORK_CONNECTION during HeadBucket operation: ...``) with its lines
    joined and the time curl waited (``after 0 ms``) left out, so the same cause reads the same each
    time. Never cut mid-way but past :data:`MAX_CAUSE` characters, and then marked ``...``."""
    text = " ".join(line.strip() for line in message(error).strip().splitlines() if line.strip())
    text = re.sub(r" after \d+ ms\b", "", text)
    if not text:
        return type(error).__name__
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."


def unreachable(error: BaseException) -> bool:
    """Whether a store's error says it did not answer (rather than answered no)."""
    return _UNREACHABLE.search(message(error)) is not None


def why(error: BaseException, cause: str | None = None) -> str:
    """A store's failure as a line says it: ``the store cannot be reached (...)``, ``access denied
    (...)`` or ``the store failed (...)``, with ``cause`` (default :func:`store_cause`) in the
    brackets."""
    cause = store_cause(error) if cause is None else cause
    if unreachable(error):
        return f"the store cannot be reached ({cause})"
    if _ACCESS_DENIED.search(message(error)):
        return f"access denied ({cause})"
    return f"the store failed ({cause})"


def store_failure(
    where: str, what: str, error: BaseException, note: str = "", cause: str | None = None
) -> InputError | StoreError:
    """The one-line error for a store that failed ``what`` at ``where`` (before a run, or when
    a command opens one): a store that cannot be reached is the environment's problem
    (:class:`StoreError`, exit 1); one that answered no (no such bucket, access denied for the
    credentials given, a bad URI) is the input's (:class:`InputError`, exit 2)."""
    line = f"{where}: {what}: {why(error, cause)}{note}"
    return StoreError(line) if unreachable(error) else InputError(line)
