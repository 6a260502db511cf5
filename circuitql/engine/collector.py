"""Python's cyclic garbage collector, paused while the search works.

A search over a zoo allocates hundreds of thousands of small objects (views,
neighbourhoods, fits) that live until the query ends, and every pass of the collector walks
every one of them: a fifth of the library's query time at 10,000 models. Reference counting
frees what the search drops; the few cycles it leaves (networkx's matcher, for a large
neighbourhood) wait for the collector's next pass, after the query. (Indexing gains nothing
measurable from it: its objects are few and large, arrays.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside the block, and on again after it if it was on before: a
    caller who turned it off keeps it off. Never hold it across a ``yield`` to the caller,
    whose own code between two results should run as the caller set it up."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
