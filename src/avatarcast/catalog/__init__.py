"""Products and the catalog that keeps them current while on air."""

from avatarcast.catalog.model import Fact, FaqEntry, Localized, Product, localize

__all__ = ["Fact", "FaqEntry", "Localized", "Product", "localize"]
