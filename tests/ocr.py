"""Tesseract OCR (the Debian ``tesseract-ocr`` package) on decoded frames, for tests."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    x: int
    y: int
    w: int
    h: int
    conf: float


def ocr_words(rgb: npt.NDArray[np.uint8], *, psm: int = 11) -> list[Word]:
    """The words tesseract reads in ``rgb`` (H x W x 3), with their boxes in its pixels."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise RuntimeError("tesseract is required for the tests: apt-get install tesseract-ocr")
    png = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(png, format="PNG")
    out = subprocess.run(
        [exe, "stdin", "stdout", "--psm", str(psm), "-l", "eng", "tsv"],
        input=png.getvalue(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    words: list[Word] = []
    rows = csv.DictReader(io.StringIO(out.stdout.decode()), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in rows:
        text = (row.get("text") or "").strip()
        if not text or float(row["conf"]) < 0:
            continue
        words.append(
            Word(
                text,
                int(row["left"]),
                int(row["top"]),
                int(row["width"]),
                int(row["height"]),
                float(row["conf"]),
            )
        )
    return words


def ocr_text(rgb: npt.NDArray[np.uint8], *, psm: int = 6) -> str:
    return " ".join(w.text for w in ocr_words(rgb, psm=psm))
