"""Frame shapes and platform safe zones: what a layout is, before anything is drawn.

A *layout* is a frame size (landscape ``720p``/``1080p`` or portrait ``720x1280``/``1080x1920``)
plus a platform preset (``tiktok``, ``douyin``, ``instagram``, ``youtube``, ``none``). The preset
names the boxes where that app draws its own interface over the video (``configs/safe_zones.toml``,
each preset with its source); the compositor keeps the card, the captions and the AI label out
of them. One stream can render several layouts from the same talk (``pipeline.layouts``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from avatarcast.errors import ConfigError, UnknownNameError
from avatarcast.programme.drawing import Box

__all__ = [
    "PRESETS",
    "SIZES",
    "Layout",
    "SafeZones",
    "check_preset",
    "check_size",
    "parse_layout",
    "safe_zones",
]

SIZES: dict[str, tuple[int, int]] = {
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "720x1280": (720, 1280),
    "1080x1920": (1080, 1920),
}
"""Frame sizes by name: width, height."""

PRESETS: tuple[str, ...] = ("none", "tiktok", "douyin", "instagram", "youtube")

_LOCAL = Path("configs/safe_zones.toml")
_SHIPPED = Path(__file__).resolve().parents[3] / "configs" / "safe_zones.toml"


def check_size(size: str) -> tuple[int, int]:
    """``(width, height)`` of a size name; an UnknownNameError naming the allowed sizes."""
    if size not in SIZES:
        raise UnknownNameError("frame size", size, list(SIZES))
    return SIZES[size]


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise UnknownNameError("layout preset", preset, list(PRESETS))
    return preset


@dataclass(frozen=True, slots=True)
class Layout:
    """A frame size and a platform preset, e.g. ``720x1280/tiktok``."""

    size: str = "720p"
    preset: str = "none"

    def __post_init__(self) -> None:
        check_size(self.size)
        check_preset(self.preset)

    @property
    def width(self) -> int:
        return SIZES[self.size][0]

    @property
    def height(self) -> int:
        return SIZES[self.size][1]

    @property
    def portrait(self) -> bool:
        return self.height > self.width

    @property
    def name(self) -> str:
        return f"{self.size}/{self.preset}"

    def __str__(self) -> str:
        return self.name


def parse_layout(text: str, *, default_preset: str = "none") -> Layout:
    """``SIZE`` or ``SIZE/PRESET`` (``1280x720`` is accepted for ``720p``, ``1920x1080`` too)."""
    size, _, preset = text.strip().partition("/")
    aliases = {"1280x720": "720p", "1920x1080": "1080p"}
    return Layout(aliases.get(size, size), preset or default_preset)


@dataclass(frozen=True, slots=True, kw_only=True)
class SafeZones:
    """The covered boxes of one preset in one frame size, in frame pixels."""

    preset: str
    width: int
    height: int
    covered: tuple[tuple[str, Box], ...]
    source: str

    def hits(self, box: Box) -> list[str]:
        """The names of the covered areas ``box`` reaches into."""
        return [name for name, area in self.covered if area.intersects(box)]

    @property
    def clear_top(self) -> int:
        """Below every covered band that runs along the top edge across most of the width."""
        bands = [a for _, a in self.covered if a.y == 0 and a.w * 2 >= self.width]
        return max((a.bottom for a in bands), default=0)

    @property
    def clear_bottom(self) -> int:
        """Above every covered area in the lower half that is at least half the width."""
        low = [a for _, a in self.covered if a.y >= self.height // 3 and a.w * 2 >= self.width]
        return min((a.y for a in low), default=self.height)

    def free_span(self, top: int, bottom: int) -> tuple[int, int]:
        """The widest x range, between the edge-hugging areas, that is clear in ``top..bottom``."""
        x0, x1 = 0, self.width
        for _, a in self.covered:
            if a.y >= bottom or a.bottom <= top:
                continue
            if a.x == 0 and a.right < self.width:
                x0 = max(x0, a.right)
            elif a.right == self.width and a.x > 0:
                x1 = min(x1, a.x)
        return x0, x1


def safe_zones(preset: str, width: int, height: int) -> SafeZones:
    """The covered areas of ``preset`` at ``width`` x ``height`` (from ``safe_zones.toml``)."""
    check_preset(preset)
    table = _table()
    entry = table.get(preset)
    if not isinstance(entry, dict):
        raise ConfigError(f"safe_zones.toml has no [{preset}] table")
    shape = "portrait" if height > width else "landscape"
    covered: list[tuple[str, Box]] = []
    for i, area in enumerate(entry.get(shape, [])):
        try:
            name = str(area["name"])
            fx, fy, fw, fh = (float(v) for v in area["box"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"safe_zones.toml [{preset}] {shape}[{i}]: {e}") from None
        x0, y0 = round(fx * width), round(fy * height)
        x1, y1 = round((fx + fw) * width), round((fy + fh) * height)
        covered.append((name, Box(x0, y0, x1 - x0, y1 - y0)))
    return SafeZones(
        preset=preset,
        width=width,
        height=height,
        covered=tuple(covered),
        source=" ".join(str(entry.get("source", "")).split()),
    )


@cache
def _table() -> dict[str, object]:
    path = _LOCAL if _LOCAL.is_file() else _SHIPPED
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the safe zones in {path}: {e}") from None
