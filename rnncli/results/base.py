"""What the result types share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class _Listed:
    """Results that read as the list of their items (``predictions``, ``fills``): ``len``, indexing
    and iteration go to that list, so ``m.complete(p)[0].word`` works."""

    _items: str = ""

    def __len__(self) -> int:
        return len(getattr(self, self._items))

    def __iter__(self) -> Iterator[Any]:
        return iter(getattr(self, self._items))

    def __getitem__(self, i):
        return getattr(self, self._items)[i]
