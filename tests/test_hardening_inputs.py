"""Inputs a client controls, through a real ``avatarcast serve`` process.

- deep JSON and oversized CSV/TSV fields answer problems, never a 500 (OWASP API4:2023
  Unrestricted Resource Consumption);
- a catalog error names the product by id as well as by position (OWASP API8:2023 Security
  Misconfiguration: errors that help the operator, without server internals);
- the AI label may be reworded but must still disclose AI in its language (OWASP API6:2023
  Unrestricted Access to Sensitive Business Flows: the disclosure is the flow's condition).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from served import Served, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, httpx.Client]]:
    with serve(tmp_path_factory.mktemp("inputs")) as s, s.client() as c:
        yield s, c


def test_api4_deep_json_and_huge_csv_fields_are_problems_not_500(
    served: tuple[Served, httpx.Client],
) -> None:
    """OWASP API4:2023: parsers bounded in depth and field size answer 400/422 problems."""
    s, c = served
    op = s.auth("operator")
    deep = "[" * 100_000 + "]" * 100_000
    r = c.post("/v1/products", content=deep, headers={**op, "content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    nested = {"products": [{"id": "a", "title": "T", "brand": "B", "price": "1"}]}
    doc: object = nested
    for _ in range(40):
        doc = {"x": doc}
    for fmt, body in (
        ("json", deep),
        ("shopify", deep),
        ("json", json.dumps([{"id": "a", "title": "T", "brand": "B", "price": "1", "x": doc}])),
    ):
        r = c.post(f"/v1/products/import?format={fmt}", content=body, headers=op)
        problem = s.problem(r, 422)
        assert "nested deeper than 32" in problem["detail"] or "not a product" in str(problem)
    huge = "x" * 200_000
    for fmt, body in (
        ("csv", f"id,title,brand,price\nA,{huge},B,1\n"),
        ("gmc-tsv", f"id\ttitle\n{huge}\tT\n"),
    ):
        r = c.post(f"/v1/products/import?format={fmt}", content=body, headers=op)
        problem = s.problem(r, 422)
        assert "field larger than field limit" in problem["detail"], problem
    assert c.get("/v1/products", headers=op).json()["items"] == []  # nothing half-written


def test_api8_a_catalog_error_names_the_product_by_id_and_position(
    served: tuple[Served, httpx.Client],
) -> None:
    """OWASP API8:2023: a Dutch catalog of three, one price missing: the row error carries
    ``product_id`` next to the position; the good rows are imported."""
    s, c = served
    catalog = [
        {"id": "fiets", "title": "Fiets", "brand": "Gazelle", "price": "899.00"},
        {"id": "ketel", "title": "Waterkoker", "brand": "Bosch", "price": "39.95"},
        {"id": "airfryer-xl", "title": "Airfryer XL", "brand": "Philips"},
    ]
    r = c.post(
        "/v1/products/import?format=json", content=json.dumps(catalog), headers=s.auth("operator")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 2
    assert body["errors"] == [
        {"row": 2, "field": "price", "reason": "is required", "product_id": "airfryer-xl"}
    ]
    csv = "id,title,brand,price\nfiets,Fiets,Gazelle,899.00\nairfryer-xl,Airfryer XL,Philips,\n"
    r = c.post("/v1/products/import?format=csv", content=csv, headers=s.auth("operator"))
    assert r.json()["errors"][0]["product_id"] == "airfryer-xl", r.text


@pytest.mark.parametrize(
    ("lang", "text", "ok"),
    [
        ("en", ".", False),
        ("en", "LIVE", False),
        ("en", "Said by our host", False),  # "ai" inside a word is not a disclosure
        ("en", "AI host", True),
        ("en", "Presenter (artificial intelligence)", True),
        ("nl", "AI-gegenereerde presentator", True),
        ("nl", "Presentator", False),
        ("de", "KI-Moderatorin", True),
        ("zh", "AI生成主播", True),
        ("zh", "人工智能主播", True),
        ("zh", "主播", False),
    ],
)
def test_api6_the_ai_label_must_say_ai_in_its_language(
    served: tuple[Served, httpx.Client], lang: str, text: str, ok: bool
) -> None:
    """OWASP API6:2023: the label's wording is free, its disclosure is not (422 names the
    field); the same rule holds on PATCH."""
    s, c = served
    op = s.auth("operator")
    label = {"text": text, "lang": lang}
    name = f"label-{lang}-{abs(hash(text))}"
    r = c.post("/v1/streams", json={"name": name, "label": label}, headers=op)
    if ok:
        assert r.status_code == 201, r.text
        assert r.json()["label"]["text"] == text
        return
    problem = s.problem(r, 422)
    assert problem["errors"][0]["field"] == "body.label.text", problem
    made = c.post("/v1/streams", json={"name": name}, headers=op)
    assert made.status_code == 201, made.text
    r = c.patch(f"/v1/streams/{made.json()['id']}", json={"label": label}, headers=op)
    assert s.problem(r, 422)["errors"][0]["field"] == "body.label.text"
    assert c.get(f"/v1/streams/{made.json()['id']}", headers=op).json()["label"]["text"] is None


def test_the_shipped_terms_file_is_what_the_server_reads() -> None:
    """The list lives in configs/ (one language per line), readable by the loader."""
    from avatarcast.compliance.disclosure import load_terms

    terms = load_terms()
    assert "KI" in terms.terms_for("de-AT") and "AI" in terms.terms_for("xx")
    assert terms.discloses("AI-gegenereerd", "nl") and not terms.discloses("LIVE", "en")
