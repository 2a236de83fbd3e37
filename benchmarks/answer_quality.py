"""The answer-quality set (tests/data/answer_quality.json) graded: right / wrong / unknown.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/answer_quality.py [--all]``; ``--all`` lists
every question with the facts its answer stated.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from avatarcast.chatsources.quality import grade_set

SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "answer_quality.json"


def main() -> None:
    graded = grade_set(SET)
    for lang in ("en", "nl"):
        mine = [g for g in graded if g.lang == lang]
        c = Counter(g.verdict for g in mine)
        share = 100 * c["right"] / len(mine)
        print(
            f"{lang}: {len(mine)} questions, {share:.1f} % right, {c['wrong']} wrong, "
            f"{c['unknown']} unknown"
        )
    for g in graded:
        if g.verdict != "right" or "--all" in sys.argv:
            print(f"  {g.verdict:7} {g.lang} {g.question} -> {', '.join(g.stated)}")


if __name__ == "__main__":
    main()
