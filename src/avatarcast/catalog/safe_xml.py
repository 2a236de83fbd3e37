"""XML with DTDs and entities refused, so a feed cannot expand or fetch anything (no XXE)."""

from __future__ import annotations

import importlib
from typing import Any
from xml.etree import ElementTree as ET
from xml.parsers import expat

from avatarcast.errors import CatalogError

__all__ = ["parse_xml", "parse_xml_stdlib"]


def parse_xml(data: bytes) -> ET.Element:
    """Parse with DTDs and entities refused: defusedxml when installed, else guarded expat."""
    try:
        defused: Any = importlib.import_module("defusedxml.ElementTree")
    except ImportError:
        return parse_xml_stdlib(data)
    try:
        root: ET.Element = defused.fromstring(data, forbid_dtd=True)
    except ET.ParseError as e:
        raise CatalogError(f"not well-formed XML: {e}") from None
    except Exception as e:  # defusedxml's DTDForbidden, EntitiesForbidden, ...
        raise CatalogError(f"XML refused: {type(e).__name__}") from None
    return root


def parse_xml_stdlib(data: bytes) -> ET.Element:
    """The stdlib's expat with a handler that refuses any DOCTYPE (hence any entity)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args: object) -> None:
        raise CatalogError("XML refused: DOCTYPE and entities are not allowed")

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start("{" + name if "}" in name else name, attrs)

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise CatalogError(f"not well-formed XML: {e}") from None
    return builder.close()
