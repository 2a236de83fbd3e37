"""Open a twin pack by name for a stream: the pack checked, its loop loaded, its engine made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatarcast.avatar.pack import find_manifest
from avatarcast.avatar.twin.clip import TwinClip
from avatarcast.avatar.twin.engine import MouthEngine, create_engine
from avatarcast.avatar.twin.pack import TwinPack, load_twin
from avatarcast.errors import ConfigError

__all__ = ["Twin", "check_twin", "open_twin"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Twin:
    """A stream's twin: one pack, its loop in memory, one engine for every view."""

    pack: TwinPack
    clip: TwinClip
    engine: MouthEngine

    @property
    def name(self) -> str:
        return self.pack.name


def check_twin(name: str, root: Path | str | None = None) -> TwinPack:
    """The pack ``name``, checked, refusing one whose consent fields are blank."""
    pack = load_twin(find_manifest(name, root))
    if not pack.consent.given:
        raise ConfigError(
            f"twin pack {name!r} has no consent on record (manifest consent.person and "
            "consent.reference are blank): fill them in before it goes on air",
            field="avatar",
        )
    return pack


def open_twin(
    name: str,
    *,
    fps: int,
    seed: int = 0,
    engine: str | None = None,
    root: Path | str | None = None,
    model: str | None = None,
    live: bool = True,
) -> Twin:
    pack = check_twin(name, root)
    if pack.fps != fps:
        raise ConfigError(
            f"twin pack {name!r} was prepared at {pack.fps} fps; the stream runs at {fps}",
            field="fps",
        )
    clip = TwinClip(pack)
    return Twin(
        pack=pack,
        clip=clip,
        engine=create_engine(
            engine or pack.engine, clip=clip, fps=fps, seed=seed, model=model, live=live
        ),
    )
