"""``limit``/``offset`` in, ``{items, total, limit, offset}`` out (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

# Far beyond any table's size, and well inside the database's 64-bit OFFSET.
MAX_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size, 1–200.")] = 50,
    # Bounded: an offset past a 64-bit integer made the database raise (a 500).
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(page_params)]


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int
