"""The XMP packet of a record: PDF/A identification, Dublin Core, and the hsdt schema.

Written by hand (not by WeasyPrint) because PDF/A requires every custom property to be
described by a ``pdfaExtension:schemas`` block and because the bytes must be the same on every
run. Properties are written in element form, one ``rdf:Description`` per schema group, which is
also the form pyHanko re-serialises to when it updates the XMP on signing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_PDF = "http://ns.adobe.com/pdf/1.3/"
NS_PDFAID = "http://www.aiim.org/pdfa/ns/id/"
NS_PDFA_EXTENSION = "http://www.aiim.org/pdfa/ns/extension/"
NS_PDFA_SCHEMA = "http://www.aiim.org/pdfa/ns/schema#"
NS_PDFA_PROPERTY = "http://www.aiim.org/pdfa/ns/property#"
# Ends with "/" as the XMP specification recommends, so that namespace + name is a clean URI.
NS_HSDT = "urn:hsdt:xmp:1/"
HSDT_PREFIX = "hsdt"

# name → description, in the order written (and described in the extension schema).
HSDT_PROPERTIES: dict[str, str] = {
    "documentId": "Mã hồ sơ (record id): loại, trường, năm học, học kì, mã định danh học sinh",
    "kind": "Loại hồ sơ, ví dụ hoc_ba_thcs",
    "studentCode": "Mã định danh học sinh (12 chữ số)",
    "schoolCode": "Mã trường trên CSDL ngành",
    "schoolName": "Tên trường",
    "schoolYear": "Năm học, ví dụ 2025-2026",
    "dataSha256": "SHA-256 (hex) của record.json nhúng trong tệp (JSON chuẩn hoá)",
    "bundleSha256": "SHA-256 (hex) của gói dữ liệu lớp đã khoá mà hồ sơ được cắt ra",
}


@dataclass(frozen=True)
class DocInfo:
    """The values that must agree between the Info dictionary and XMP (ISO 19005-3, 6.6.2.3)."""

    title: str
    author: str
    subject: str
    creator: str  # Info /Creator ↔ xmp:CreatorTool
    producer: str  # Info /Producer ↔ pdf:Producer
    created: str  # XMP date, e.g. 2026-01-15T08:00:00+00:00 (Info /CreationDate)
    modified: str  # Info /ModDate ↔ xmp:ModifyDate


def _t(text: str) -> str:
    return escape(text)


def xmp_packet(info: DocInfo, hsdt: Mapping[str, str]) -> bytes:
    """A complete, deterministic XMP packet (UTF-8)."""
    unknown = set(hsdt) - set(HSDT_PROPERTIES)
    if unknown:
        raise ValueError(f"undescribed hsdt XMP properties: {sorted(unknown)}")
    props = "".join(f"   <hsdt:{k}>{_t(hsdt[k])}</hsdt:{k}>\n"
                    for k in HSDT_PROPERTIES if k in hsdt)
    described = "".join(
        "       <rdf:li rdf:parseType=\"Resource\">\n"
        f"        <pdfaProperty:name>{k}</pdfaProperty:name>\n"
        "        <pdfaProperty:valueType>Text</pdfaProperty:valueType>\n"
        "        <pdfaProperty:category>external</pdfaProperty:category>\n"
        f"        <pdfaProperty:description>{_t(v)}</pdfaProperty:description>\n"
        "       </rdf:li>\n"
        for k, v in HSDT_PROPERTIES.items())
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        f'  <rdf:Description rdf:about="" xmlns:pdfaid="{NS_PDFAID}">\n'
        "   <pdfaid:part>3</pdfaid:part>\n"
        "   <pdfaid:conformance>B</pdfaid:conformance>\n"
        "  </rdf:Description>\n"
        f'  <rdf:Description rdf:about="" xmlns:dc="{NS_DC}">\n'
        "   <dc:format>application/pdf</dc:format>\n"
        f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_t(info.title)}</rdf:li>'
        "</rdf:Alt></dc:title>\n"
        f"   <dc:creator><rdf:Seq><rdf:li>{_t(info.author)}</rdf:li></rdf:Seq></dc:creator>\n"
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_t(info.subject)}</rdf:li>'
        "</rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        f'  <rdf:Description rdf:about="" xmlns:xmp="{NS_XMP}">\n'
        f"   <xmp:CreatorTool>{_t(info.creator)}</xmp:CreatorTool>\n"
        f"   <xmp:CreateDate>{info.created}</xmp:CreateDate>\n"
        f"   <xmp:ModifyDate>{info.modified}</xmp:ModifyDate>\n"
        f"   <xmp:MetadataDate>{info.modified}</xmp:MetadataDate>\n"
        "  </rdf:Description>\n"
        f'  <rdf:Description rdf:about="" xmlns:pdf="{NS_PDF}">\n'
        f"   <pdf:Producer>{_t(info.producer)}</pdf:Producer>\n"
        "  </rdf:Description>\n"
        f'  <rdf:Description rdf:about="" xmlns:{HSDT_PREFIX}="{NS_HSDT}">\n'
        f"{props}"
        "  </rdf:Description>\n"
        f'  <rdf:Description rdf:about="" xmlns:pdfaExtension="{NS_PDFA_EXTENSION}"'
        f' xmlns:pdfaSchema="{NS_PDFA_SCHEMA}" xmlns:pdfaProperty="{NS_PDFA_PROPERTY}">\n'
        "   <pdfaExtension:schemas>\n"
        "    <rdf:Bag>\n"
        '     <rdf:li rdf:parseType="Resource">\n'
        "      <pdfaSchema:schema>HSĐT record metadata</pdfaSchema:schema>\n"
        f"      <pdfaSchema:namespaceURI>{NS_HSDT}</pdfaSchema:namespaceURI>\n"
        f"      <pdfaSchema:prefix>{HSDT_PREFIX}</pdfaSchema:prefix>\n"
        "      <pdfaSchema:property>\n"
        "       <rdf:Seq>\n"
        f"{described}"
        "       </rdf:Seq>\n"
        "      </pdfaSchema:property>\n"
        "     </rdf:li>\n"
        "    </rdf:Bag>\n"
        "   </pdfaExtension:schemas>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return text.encode("utf-8")
