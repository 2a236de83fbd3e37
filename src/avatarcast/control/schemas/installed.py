from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class InstalledItem(BaseModel):
    """An installed avatar pack or voice: its name and what its package says about it."""

    name: str
    info: dict[str, Any]
