"""Trials send their results to the driver in batches of up to :data:`RESULT_BATCH_S`.

With one result a call, a trial's ``tune.report`` waits for the driver to process the result
and ask for the next (~10 ms an epoch on 2 busy cores: 10-20% of a 50-100 ms epoch), and the
driver pays a remote call per epoch. A batch ends early where a decision may follow, so that
nothing is trained in vain and nothing waits: at an epoch where ASHA judges a trial (its
milestones, :meth:`tuner.spec.SchedulerSpec.milestones`) and at the trial's end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from ray.tune.result import DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT, TRAINING_ITERATION
from ray.tune.trainable.function_trainable import wrap_function

from tuner.ray.settings import setting

# Longest a trial keeps its results before sending them to the driver in one batch.
RESULT_BATCH_S = 1.0


@contextlib.contextmanager
def batching() -> Iterator[None]:
    """Tune's controller calls a trial's ``train_buffered`` (:func:`batched`) instead of
    ``train`` when ``TUNE_RESULT_BUFFER_LENGTH`` > 1 as it starts. Set for our experiments
    alone; a user's ``TUNE_RESULT_BUFFER_LENGTH=1`` turns batching off."""
    with setting("TUNE_RESULT_BUFFER_LENGTH", "1000"):
        yield


def batched(function: Callable[..., None], decisions: frozenset[int] | set[int]) -> type:
    """The function trainable ``function`` as Tune's class, sending its results in batches.

    A trial that fails sends the results it had before the error, which comes with the next
    call. A result with a checkpoint travels alone (Tune 2.60 saves it, then asks for more;
    after a batch of several it would also act on the earlier results' CONTINUE and ask twice).
    Tune 2.60's controller passes ``(length, seconds)`` to ``train_buffered(seconds, length)``,
    the wrong way round; this trainable takes neither and uses its own rule.
    """
    cls = wrap_function(function)
    decisions = frozenset(decisions)

    class Batched(cls):  # type: ignore[misc, valid-type]
        _held: dict[str, Any] | None = None  # a checkpoint's result, sent with the next call
        _error: Exception | None = None  # raised by the trial after a batch's first result

        def train_buffered(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._held is not None:
                held, self._held = self._held, None
                return [held]
            results: list[dict[str, Any]] = []
            until = time.monotonic() + RESULT_BATCH_S
            while True:
                try:
                    result = self.train()
                except Exception as e:
                    if not results:
                        raise
                    self._error = e
                    return results
                if result.get(SHOULD_CHECKPOINT) and results:
                    self._held = result
                    return results
                results.append(result)
                if (
                    result.get(DONE)
                    or result.get(SHOULD_CHECKPOINT)
                    or result.get(RESULT_DUPLICATE)
                    or result.get(TRAINING_ITERATION) in decisions
                    or time.monotonic() >= until
                ):
                    return results

        def reset(self, *args: Any, **kwargs: Any) -> bool:  # a reused actor starts its next trial afresh
            self._held = self._error = None
            return bool(super().reset(*args, **kwargs))

    Batched.__name__ = Batched.__qualname__ = function.__name__  # trial folders stay named after it
    return Batched
