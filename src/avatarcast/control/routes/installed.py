"""What is installed (avatar packs, voices), described as name and JSON-safe info."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from avatarcast.control.schemas.installed import InstalledItem

log = logging.getLogger(__name__)


def describe_all(items: Iterable[Any]) -> list[InstalledItem]:
    return [describe(item) for item in items]


def describe(item: Any) -> InstalledItem:
    info: Any
    if isinstance(item, str):
        return InstalledItem(name=item, info={})
    if isinstance(item, BaseModel):
        info = item.model_dump(mode="json")
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        info = dataclasses.asdict(item)
    elif isinstance(item, Mapping):
        info = dict(item)
    else:
        info = {k: v for k, v in vars(item).items() if not k.startswith("_")}
    safe: dict[str, Any] = json.loads(json.dumps(info, default=str))
    name = safe.get("name") or safe.get("id") or str(item)
    return InstalledItem(name=str(name), info=safe)
