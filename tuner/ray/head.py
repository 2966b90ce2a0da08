"""What the head of a local instance of the command's own starts, and what it leaves out
(:func:`tuner.ray.cluster.connect` starts it through ``ray.init``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def api_server_left_out(address: str | None) -> Iterator[None]:
    """A local instance of the command's own starts without Ray's API server (the dashboard's
    head in its minimal form: Ray's job submission and state REST API, which nothing uses on an
    instance that lives for one command). ``ray.init`` starts it even with no dashboard and
    waits for it to register, about 1 s of a 2-core laptop's start, and it then takes CPU from
    the trials (BENCHMARKS.md i). No port of it is opened. An instance that is joined keeps
    whatever it runs."""
    if address is not None:
        yield
        return
    from ray._private import node as ray_node

    from tuner.ray.tune_patches import swapped

    with swapped(ray_node.Node, "start_api_server", lambda self, **kwargs: None):
        yield
