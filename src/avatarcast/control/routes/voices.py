from __future__ import annotations

from fastapi import APIRouter

from avatarcast.control.deps import ReaderDep
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.installed import describe_all
from avatarcast.control.schemas.installed import InstalledItem
from avatarcast.voice.registry import list_voices as installed_voices

router = APIRouter(prefix="/v1/voices", tags=["voices"], responses=AUTH_PROBLEMS)


@router.get("", response_model=list[InstalledItem])
def list_voices(_: ReaderDep) -> list[InstalledItem]:
    """Installed voices."""
    return describe_all(installed_voices())
