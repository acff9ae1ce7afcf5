"""Cache backends for the caching tests: one that fails on demand, one that records writes."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.cache.backends.locmem import LocMemCache


class FlakyCache(LocMemCache):
    """A LocMemCache whose listed operations raise, like a Redis that went away."""

    failing: ClassVar[set[str]] = set()

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.failing:
            raise ConnectionError(f"{operation}: connection refused (simulated)")

    def get_many(self, keys: Any, version: Any = None) -> Any:
        self._maybe_fail("get_many")
        return super().get_many(keys, version)

    def set_many(self, data: Any, timeout: Any = 300, version: Any = None) -> Any:
        self._maybe_fail("set_many")
        return super().set_many(data, timeout, version)

    def add(self, key: Any, value: Any, timeout: Any = 300, version: Any = None) -> Any:
        self._maybe_fail("add")
        return super().add(key, value, timeout, version)


class RecordingCache(LocMemCache):
    """A LocMemCache remembering the timeout and data of every ``set_many``."""

    writes: ClassVar[list[tuple[Any, dict[str, Any]]]] = []

    def set_many(self, data: Any, timeout: Any = 300, version: Any = None) -> Any:
        self.writes.append((timeout, dict(data)))
        return super().set_many(data, timeout, version)
