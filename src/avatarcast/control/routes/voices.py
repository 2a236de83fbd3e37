from __future__ import annotations

from fastapi import APIRouter

from avatarcast.control.deps import ReaderDep
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.installed import list_installed
from avatarcast.control.schemas.installed import InstalledItem

router = APIRouter(prefix="/v1/voices", tags=["voices"], responses=AUTH_PROBLEMS)


@router.get("", response_model=list[InstalledItem])
def list_voices(_: ReaderDep) -> list[InstalledItem]:
    """Installed voices (``avatarcast.voice.registry.list_voices``)."""
    return list_installed("avatarcast.voice.registry", "list_voices")
