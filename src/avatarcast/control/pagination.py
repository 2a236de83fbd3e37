"""Keyset pagination: ``?cursor=<opaque>&limit=N`` -> ``{items, next_cursor}``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Query

T = TypeVar("T")

CursorQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page"),
]
LimitQuery = Annotated[int, Query(ge=1, le=500)]


def after_key(cursor: str | None) -> int:
    return int(cursor) if cursor else 0


def cut_page(rows: Sequence[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], str | None]:
    """Rows were fetched with ``limit + 1``: the extra one only says there is a next page."""
    page = list(rows[:limit])
    return page, (str(key(page[-1])) if len(rows) > limit and page else None)
