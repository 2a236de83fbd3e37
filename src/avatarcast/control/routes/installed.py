"""What is installed, read from the avatar and voice packages (imported lazily: optional)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from avatarcast.control.schemas.installed import InstalledItem

log = logging.getLogger(__name__)


def list_installed(module: str, function: str) -> list[InstalledItem]:
    """``module.function()`` described as items; empty when the package is not there yet."""
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return []
    return [describe(item) for item in fn()]


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
    name = safe.get("name") or safe.get("id") or getattr(item, "name", None) or str(item)
    return InstalledItem(name=str(name), info=safe)
