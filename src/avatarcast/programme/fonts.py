"""Fonts for overlays, chosen from a fixed list so one machine always draws the same pixels.

Latin text (with €) uses DejaVu Sans when it is installed, else Pillow's bundled font. Text
with CJK characters uses Noto Sans CJK SC when it is installed. No fontconfig query: the first
existing file of a fixed list wins, and layout is Pillow's basic engine (no raqm), so the
choice and the glyph placement do not depend on what else is installed.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from PIL import ImageFont

from avatarcast.errors import ConfigError

__all__ = ["Style", "cjk_font_path", "font_for", "has_cjk", "latin_font_path", "load_font"]

Style = Literal["regular", "bold", "condensed-bold"]

_DEJAVU_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)
_LATIN_FILES: dict[Style, tuple[str, ...]] = {
    "regular": ("DejaVuSans.ttf",),
    "bold": ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf"),
    "condensed-bold": ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans.ttf"),
}
_CJK_DIRS = (
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/noto-cjk"),
    Path("/usr/share/fonts/google-noto-cjk"),
)
_CJK_FILES: dict[Style, tuple[str, ...]] = {
    "regular": ("NotoSansCJK-Regular.ttc",),
    "bold": ("NotoSansCJK-Bold.ttc", "NotoSansCJK-Regular.ttc"),
    "condensed-bold": ("NotoSansCJK-Bold.ttc", "NotoSansCJK-Regular.ttc"),
}
_CJK_FACE = "Noto Sans CJK SC"

_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3190-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a character that DejaVu Sans cannot draw but Noto Sans CJK can."""
    return _CJK.search(text) is not None


def _first_existing(dirs: tuple[Path, ...], names: tuple[str, ...]) -> Path | None:
    for name in names:
        for d in dirs:
            p = d / name
            if p.is_file():
                return p
    return None


@cache
def latin_font_path(style: Style = "regular") -> Path | None:
    """The DejaVu Sans file for ``style``, or None when DejaVu is not installed."""
    return _first_existing(_DEJAVU_DIRS, _LATIN_FILES[style])


@cache
def cjk_font_path(style: Style = "regular") -> Path | None:
    """The Noto Sans CJK collection for ``style``, or None when it is not installed."""
    return _first_existing(_CJK_DIRS, _CJK_FILES[style])


@cache
def _cjk_face_index(path: Path) -> int:
    """Index of the Simplified Chinese face in a Noto CJK collection (0 if not found)."""
    for index in range(16):
        try:
            face = ImageFont.truetype(str(path), 12, index=index)
        except OSError:
            break
        if face.getname()[0] == _CJK_FACE:
            return index
    return 0


@lru_cache(maxsize=256)
def load_font(path: Path | None, size: int, index: int = 0) -> ImageFont.FreeTypeFont:
    """A FreeType font at ``size`` pixels; ``path`` None means Pillow's bundled font."""
    if size < 1:
        raise ValueError(f"font size must be at least 1 pixel, got {size}")
    if path is None:
        font = ImageFont.load_default(size)
        if not isinstance(font, ImageFont.FreeTypeFont):
            raise ConfigError("Pillow was built without FreeType; overlays cannot draw text")
        return font
    return ImageFont.truetype(str(path), size, index=index, layout_engine=ImageFont.Layout.BASIC)


def font_for(text: str, size: int, *, style: Style = "regular") -> ImageFont.FreeTypeFont:
    """The font to draw ``text`` with: Noto Sans CJK for CJK text when installed, else Latin."""
    if has_cjk(text):
        cjk = cjk_font_path(style)
        if cjk is not None:
            return load_font(cjk, size, _cjk_face_index(cjk))
    return load_font(latin_font_path(style), size)
