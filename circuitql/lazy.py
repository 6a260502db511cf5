"""A value computed on first read and kept on the instance: ``functools.cached_property``
without its lock.

On Python 3.11 every first read through ``functools.cached_property`` takes a lock shared by
all instances of the class (3.12 dropped it as useless). A query makes tens of thousands of
first reads (each view's row, norm, significant inputs, each record's fields), and the lock
cost 2 to 4% of the library's default searches at 10,000 models. Like functools', the value
goes into the instance's ``__dict__``, so later reads never reach the descriptor, and frozen
dataclasses can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached_property(Generic[T]):
    """Compute ``compute(instance)`` on the first read, then keep it on the instance."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object, owner: type | None = None) -> T | cached_property[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value
