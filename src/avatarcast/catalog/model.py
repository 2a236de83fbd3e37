"""The product model every part of avatarcast reads: facts with stable ids, localized text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: A text in one language for all, or a mapping of language code to text.
Localized = str | dict[str, str]

PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Availability = Literal["in_stock", "out_of_stock", "preorder", "backorder"]


def localize(value: Localized, lang: str) -> str:
    """The text for ``lang``; falls back to English, then to the first language given."""
    if isinstance(value, str):
        return value
    if lang in value:
        return value[lang]
    if "en" in value:
        return value["en"]
    return next(iter(value.values()), "")


class Fact(BaseModel):
    """One key fact: a label ("Capacity") and a value ("5.5 litres"), each maybe localized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Localized
    value: Localized

    def label_in(self, lang: str) -> str:
        return localize(self.label, lang)

    def value_in(self, lang: str) -> str:
        return localize(self.value, lang)


class FaqEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: Localized
    answer: Localized


Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]


class Product(BaseModel):
    """A product as the presenter may speak of it. Nothing outside these fields may be claimed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: Localized
    brand: str = Field(min_length=1, max_length=120)
    price: Money
    currency: str = "EUR"
    sale_price: Money | None = None
    prior_lowest_price: Money | None = Field(
        default=None, description="Lowest price of the 30 days before the current offer."
    )
    availability: Availability = "in_stock"
    stock: int | None = Field(default=None, ge=0)
    facts: dict[str, Fact] = Field(default_factory=dict)
    selling_points: list[Localized] = Field(default_factory=list)
    faq: list[FaqEntry] = Field(default_factory=list)
    image: str | None = None
    url: str | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not PRODUCT_ID.match(v):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return v

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", v):
            raise ValueError("must be an ISO 4217 code of three capital letters, like EUR")
        return v

    @field_validator("title")
    @classmethod
    def _check_title(cls, v: Localized) -> Localized:
        texts = [v] if isinstance(v, str) else list(v.values())
        if not texts or any(not t.strip() for t in texts):
            raise ValueError("must not be empty")
        return v

    @field_validator("facts", mode="before")
    @classmethod
    def _shorthand_facts(cls, v: object) -> object:
        """Accept ``{"capacity": "5.5 l"}`` as shorthand for a fact labelled by its key."""
        if not isinstance(v, Mapping):
            return v
        out: dict[str, object] = {}
        for key, fact in v.items():
            if isinstance(fact, str | int | float):
                fact = {"label": str(key).replace("_", " "), "value": str(fact)}
            elif isinstance(fact, Mapping) and "value" not in fact:
                fact = {"label": str(key).replace("_", " "), "value": dict(fact)}
            out[str(key)] = fact
        return out

    @model_validator(mode="after")
    def _check_prices(self) -> Product:
        if self.sale_price is not None and self.sale_price >= self.price:
            raise ValueError("sale_price must be lower than price")
        return self

    def title_in(self, lang: str) -> str:
        return localize(self.title, lang)

    @property
    def current_price(self) -> Decimal:
        return self.sale_price if self.sale_price is not None else self.price

    def fact_id(self, kind: str, key: str | int | None = None) -> str:
        """Stable id of one catalog fact, e.g. ``airfryer-x1:fact:capacity``."""
        return f"{self.id}:{kind}" if key is None else f"{self.id}:{kind}:{key}"

    def fact_ids(self) -> Iterator[str]:
        """Every fact id this product offers."""
        yield self.fact_id("title")
        yield self.fact_id("brand")
        yield self.fact_id("price")
        if self.sale_price is not None:
            yield self.fact_id("sale_price")
        if self.prior_lowest_price is not None:
            yield self.fact_id("prior_lowest_price")
        yield self.fact_id("availability")
        if self.stock is not None:
            yield self.fact_id("stock")
        for key in self.facts:
            yield self.fact_id("fact", key)
        for i in range(len(self.selling_points)):
            yield self.fact_id("sp", i)
        for i in range(len(self.faq)):
            yield self.fact_id("faq", i)
