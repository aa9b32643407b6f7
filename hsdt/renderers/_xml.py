"""record.json → record.xml: the same data as XML, for readers that want XML (the PDF and the XML
are "of equal value", so the XML must say exactly what the JSON says and nothing more).

The mapping is small, deterministic and reversible, so a verifier can prove the two embedded
files carry the same data by converting one into the other:

- an object becomes an element whose children are its keys, in sorted order (as in the
  canonical JSON); a key that is not an XML name becomes ``<entry key="…">``;
- an array becomes an element with ``t="array"`` whose children are ``<item>`` elements;
- a string is the element's text; numbers, booleans and null carry ``t="number"``,
  ``t="boolean"`` and ``t="null"``; an empty object carries ``t="object"`` (otherwise it
  would read back as an empty string).

Serialisation is done by hand rather than by an XML library, so that the bytes (attribute
order, escaping, indentation) do not depend on a library version.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

RECORD_XML_NS = "urn:hsdt:record:1"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Characters XML 1.0 cannot carry at all (C0 controls other than tab, LF, CR; surrogates; FFFE/F).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def record_xml(data: dict[str, Any], root: str = "record") -> bytes:
    """Render JSON-ready ``data`` as UTF-8 XML in the ``urn:hsdt:record:1`` namespace."""
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _element(out, root, data, 0, f' xmlns="{RECORD_XML_NS}"')
    return "".join(out).encode("utf-8")


def _element(out: list[str], key: str, value: Any, depth: int, extra: str = "") -> None:
    pad = "  " * depth
    if _NAME.match(key) and not key.lower().startswith("xml"):
        tag, attrs = key, extra
    else:
        tag, attrs = "entry", f'{extra} key="{_escape(key, attr=True)}"'
    if isinstance(value, dict):
        if not value:
            out.append(f'{pad}<{tag}{attrs} t="object"/>\n')
            return
        out.append(f"{pad}<{tag}{attrs}>\n")
        for k in sorted(value):
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, got {k!r}")
            _element(out, k, value[k], depth + 1)
        out.append(f"{pad}</{tag}>\n")
    elif isinstance(value, list):
        if not value:
            out.append(f'{pad}<{tag}{attrs} t="array"/>\n')
            return
        out.append(f'{pad}<{tag}{attrs} t="array">\n')
        for item in value:
            _element(out, "item", item, depth + 1)
        out.append(f"{pad}</{tag}>\n")
    elif value is None:
        out.append(f'{pad}<{tag}{attrs} t="null"/>\n')
    elif isinstance(value, bool):  # before int: bool is an int
        out.append(f'{pad}<{tag}{attrs} t="boolean">{"true" if value else "false"}</{tag}>\n')
    elif isinstance(value, int | float):
        out.append(f'{pad}<{tag}{attrs} t="number">{value!r}</{tag}>\n')
    elif isinstance(value, str):
        out.append(f"{pad}<{tag}{attrs}>{_escape(value)}</{tag}>\n")
    else:
        raise TypeError(f"not JSON-ready: {type(value).__name__}")


def _escape(text: str, attr: bool = False) -> str:
    if _FORBIDDEN.search(text):
        raise ValueError(f"text cannot be written in XML 1.0: {text!r}")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # CR would be normalised to LF by any XML parser: keep it as a character reference.
    text = text.replace("\r", "&#13;")
    if attr:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def parse_record_xml(xml: bytes) -> dict[str, Any]:
    """Inverse of :func:`record_xml`: lets a verifier check that record.xml says what
    record.json says."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             remove_blank_text=False)
    root = etree.fromstring(xml, parser=parser)
    if etree.QName(root).namespace != RECORD_XML_NS:
        raise ValueError(f"root element is not in {RECORD_XML_NS}")
    value = _value(root)
    if not isinstance(value, dict):
        raise ValueError("root element is not an object")
    return value


def _key(el: Any) -> str:
    local = etree.QName(el).localname
    return str(el.get("key")) if local == "entry" and el.get("key") is not None else local


def _value(el: Any) -> Any:
    t = el.get("t")
    children = [c for c in el if isinstance(c.tag, str)]
    if t == "array":
        return [_value(c) for c in children]
    if t == "object":
        return {}
    if t == "null":
        return None
    if t == "boolean":
        return el.text == "true"
    if t == "number":
        text = el.text or ""
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if children:
        return {_key(c): _value(c) for c in children}
    return el.text or ""
