"""Write the reproducible twin test recording (the public-domain astronaut, an espeak voice).

    .venv/bin/python scripts/make_twin_test_video.py OUT.mp4 [--lang en|nl] [--size 1280x720]
        [--silence 5] [--sentences N] [--repeat N] [--seed N] [--noise LEVELS]

Same arguments, same file (see ``avatarcast.twinprep.testmedia``). Then
``avatarcast avatars prepare --video OUT.mp4 --name NAME`` (with ``--script-file`` when only
some sentences, or several readings, were used).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avatarcast.twinprep.testmedia import make_test_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--lang", default="en")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--silence", type=float, default=5.0)
    ap.add_argument("--sentences", type=int)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.0, help="camera grain, 8-bit levels")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    make_test_video(
        a.out, lang=a.lang, width=w, height=h, silence_s=a.silence, sentences=a.sentences,
        repeat=a.repeat, seed=a.seed, noise=a.noise,
    )  # fmt: skip


if __name__ == "__main__":
    main()
