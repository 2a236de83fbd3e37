"""Answers state the most specific fact: the answer-quality set over the demo catalog.

At least 40 questions per language (en, nl), each with the fact ids a good answer states.
Goal (issue #17): at least 90 % state an expected fact, none states a wrong one. The case
that started it: "How big is the airfryer basket?" gives the 5.5 litres capacity, not the
selling point about a family of four.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from avatarcast.chatsources.quality import grade_set

SET = Path(__file__).parent / "data" / "answer_quality.json"


def test_the_set_has_40_questions_per_language() -> None:
    items = json.loads(SET.read_text())["items"]
    per_lang = Counter(i["lang"] for i in items)
    assert per_lang["en"] >= 40 and per_lang["nl"] >= 40
    assert all(i["facts"] for i in items)


def test_answers_state_an_expected_fact_and_never_a_wrong_one() -> None:
    graded = grade_set(SET)
    for lang in ("en", "nl"):
        mine = [g for g in graded if g.lang == lang]
        verdicts = Counter(g.verdict for g in mine)
        wrong = [(g.question, g.stated) for g in mine if g.verdict == "wrong"]
        assert not wrong, wrong
        assert verdicts["right"] / len(mine) >= 0.9, (lang, verdicts)
    basket = next(g for g in graded if g.question == "How big is the airfryer basket?")
    assert basket.stated == ("kovana-af550:fact:capacity",) and "5.5 litres" in basket.answer
    mand = next(g for g in graded if g.question == "Hoe groot is de mand van de airfryer?")
    assert "5,5 liter" in mand.answer
