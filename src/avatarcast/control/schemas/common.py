from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    """Base of response bodies: built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")
