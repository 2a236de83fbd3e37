from __future__ import annotations

from fastapi import APIRouter

from avatarcast.avatar.pack import is_twin, list_packs
from avatarcast.control.deps import ReaderDep
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.installed import describe_all
from avatarcast.control.schemas.installed import InstalledItem

router = APIRouter(prefix="/v1/avatars", tags=["avatars"], responses=AUTH_PROBLEMS)


@router.get("", response_model=list[InstalledItem])
def list_avatars(_: ReaderDep) -> list[InstalledItem]:
    """Installed avatar packs; ``info.kind`` is ``drawn`` or ``twin``."""
    return describe_all(
        [{"name": n, "kind": "twin" if is_twin(n) else "drawn"} for n in list_packs()]
    )
