"""Visible signature appearances in Vietnamese with an embedded font.

pyHanko's default stamp font is not embedded (it breaks PDF/A), and its OpenType stamps
re-load and re-subset the font for every signature, which costs more than the signature.
Here the font is cut once per process to the Vietnamese repertoire, and a record embeds it
once: the first stamp writes it, and every later stamp draws with that same font object
(:func:`_shared_font_in`), after checking that it is exactly the font this module writes. A
signature then adds only its appearance stream. A name with a character outside the
repertoire (rare) gets a subset of the whole font of its own, as every signer once did.

One font per signer cost every record some 140 KB and its verifier ~8 ms: each signature
revision brought five font objects that the modification analysis parses and checks.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from fontTools import subset
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic, layout, misc
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp.base import BaseStampStyle

from hsdt.settings import FONTS_DIR

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
_FONT_PATH = FONTS_DIR / "NotoSerif-Regular.ttf"
# Characters every stamp may need, so a signer's subset serves every date and time.
_ALWAYS = set("0123456789/:.,-() ") | set("Ký bởi:Ngày ký:GMT+7")


def stamp_lines(signer_name: str, when: datetime) -> tuple[str, ...]:
    local = when.astimezone(VN_TZ)
    return (f"Ký bởi: {signer_name}", f"Ngày ký: {local:%d/%m/%Y %H:%M} (GMT+7)")


def _stamp_chars(lines: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_ALWAYS | {c for line in lines for c in line})


@dataclass(frozen=True)
class _FontSubset:
    ps_name: str
    font_file: bytes  # FlateDecode-compressed TrueType subset
    font_file_length: int
    font_sha256: str  # of the TrueType subset itself (the stream's decoded bytes)
    gid_of: dict[str, int]
    widths: dict[int, int]  # gid → advance in 1/1000 em
    ascent: int
    descent: int
    cap_height: int
    bbox: tuple[int, int, int, int]
    to_unicode: bytes

    @property
    def advances(self) -> list[int]:
        """The advance of each glyph in id order: subset ids run 0..n-1, so the CIDFont's
        /W is the one run "0 [advances]"."""
        return [self.widths[gid] for gid in range(len(self.widths))]


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _font_bytes() -> bytes:
    return _FONT_PATH.read_bytes()


# What a Vietnamese name, a date and the stamp's words are written with: ASCII, Latin-1 and
# Latin Extended-A (Đ đ), Ơ ơ Ư ư, the combining accents (names typed decomposed), Latin
# Extended Additional (ạ … ỹ) and common punctuation.
_REPERTOIRE = frozenset(
    [*range(0x20, 0x7F), *range(0xA0, 0x180), *range(0x1A0, 0x1B1), *range(0x300, 0x324),
     *range(0x1EA0, 0x1EFA), *map(ord, "–—‘’“”…•")])


def _subset_font(source: bytes, unicodes: list[int]) -> TTFont:
    """``source`` cut down to ``unicodes``, without the layout tables (a stamp is set glyph
    by glyph: no shaping, no kerning)."""
    font = TTFont(io.BytesIO(source), lazy=False)
    opts = subset.Options()
    opts.layout_features = []
    opts.name_IDs = ["*"]
    opts.notdef_outline = True
    opts.drop_tables += ["GSUB", "GPOS", "GDEF", "DSIG"]
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=unicodes)
    sub.subset(font)
    return font


@lru_cache(maxsize=1)
def _repertoire_font() -> bytes:
    """The font cut down once per process to the Vietnamese repertoire.

    Parsing the whole 600 KB font (its layout tables above all) for each signer's subset
    cost ~0.25 s per signer name: a worker's first record paid it for all fifteen of its
    signers. Each signer's subset is cut from this small font instead.
    """
    out = io.BytesIO()
    _subset_font(_font_bytes(), sorted(_REPERTOIRE)).save(out)
    return out.getvalue()


@lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    """The code points the whole font has a glyph for (its repertoire subset has the same
    glyphs for the code points it keeps)."""
    return frozenset(TTFont(io.BytesIO(_font_bytes()), lazy=True).getBestCmap())


@lru_cache(maxsize=256)
def _subset_for(chars: frozenset[str]) -> _FontSubset:
    with _lock:
        wanted = sorted(c for c in chars if ord(c) in _covered())
        # A character outside the repertoire (a rare name) is cut from the whole font.
        inside = all(ord(c) in _REPERTOIRE for c in wanted)
        font = _subset_font(_repertoire_font() if inside else _font_bytes(),
                            [ord(c) for c in wanted])
        order = {name: i for i, name in enumerate(font.getGlyphOrder())}
        new_cmap = font.getBestCmap()
        upem = font["head"].unitsPerEm
        scale = 1000 / upem
        gid_of = {c: order[new_cmap[ord(c)]] for c in wanted}
        hmtx = font["hmtx"].metrics
        widths = {gid: round(hmtx[name][0] * scale) for name, gid in order.items()}
        head, os2 = font["head"], font["OS/2"]
        out = io.BytesIO()
        font.save(out)
        raw = out.getvalue()
    tag = "HSDT" + "".join(chr(65 + (b % 26)) for b in hashlib.sha256(raw).digest()[:2])
    base = "NotoSerif-Regular"
    cmap_lines = "\n".join(f"<{gid:04X}> <{c.encode('utf-16-be').hex().upper()}>"
                           for c, gid in sorted(gid_of.items(), key=lambda kv: kv[1]))
    to_unicode = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{len(gid_of)} beginbfchar\n{cmap_lines}\nendbfchar\n"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")
    return _FontSubset(
        ps_name=f"{tag}+{base}", font_file=zlib.compress(raw, 9), font_file_length=len(raw),
        font_sha256=hashlib.sha256(raw).hexdigest(),
        gid_of=gid_of, widths=widths,
        ascent=round(os2.sTypoAscender * scale), descent=round(os2.sTypoDescender * scale),
        cap_height=round(getattr(os2, "sCapHeight", 700) * scale),
        bbox=(round(head.xMin * scale), round(head.yMin * scale), round(head.xMax * scale),
              round(head.yMax * scale)),
        to_unicode=to_unicode,
    )


@lru_cache(maxsize=1)
def _shared_subset() -> _FontSubset:
    """The stamp font a record's signers share: every character of the repertoire the font
    draws."""
    return _subset_for(frozenset(map(chr, _REPERTOIRE)))


def _shared_font_in(writer: BasePdfFileWriter, fs: _FontSubset) -> generic.IndirectObject | None:
    """The font an earlier stamp of this document embedded for ``fs``, if there is one.

    Only a font that draws exactly what ``fs`` draws is taken (:func:`_is_font`): a stamp
    laid out for ``fs`` and drawn with any other font would show other text than the
    signer's name. Anything else in the file (a tampered or damaged font, another
    producer's appearance) is passed over, and the stamp embeds its own.
    """
    try:
        fields = writer.root["/AcroForm"]["/Fields"]
    except (KeyError, TypeError, misc.PdfError):
        return None
    for field in fields:
        try:
            font = field.get_object()["/AP"]["/N"]["/Resources"]["/Font"].raw_get("/F1")
        except (KeyError, TypeError, AttributeError, misc.PdfError):
            continue  # unsigned (no resources yet), or not a stamp of ours
        if isinstance(font, generic.IndirectObject) and _is_font(font.get_object(), fs):
            return font
    return None


def _is_font(font: generic.PdfObject, fs: _FontSubset) -> bool:
    """Whether ``font`` is the Type0 font :func:`_font_objects` writes for ``fs``, in all that
    decides what a stamp shows: glyph program, glyph ids, advances and Unicode map."""
    try:
        if not isinstance(font, generic.DictionaryObject) or (
                font.get("/Subtype"), font.get("/BaseFont"), font.get("/Encoding")
        ) != ("/Type0", "/" + fs.ps_name, "/Identity-H"):
            return False
        descendants = font["/DescendantFonts"]
        if len(descendants) != 1:
            return False
        cid = descendants[0]
        widths = cid["/W"]
        if ((cid.get("/Subtype"), cid.get("/CIDToGIDMap")) != ("/CIDFontType2", "/Identity")
                or len(widths) != 2 or widths[0] != 0
                or list(widths[1]) != fs.advances):
            return False
        program = cid["/FontDescriptor"]["/FontFile2"].data
        return (hashlib.sha256(program).hexdigest() == fs.font_sha256
                and font["/ToUnicode"].data == fs.to_unicode)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, misc.PdfError):
        return False


def _stream(data: bytes, extra: dict[str, generic.PdfObject] | None = None,
            compressed: bool = False) -> generic.StreamObject:
    d = generic.DictionaryObject(extra or {})
    if compressed:
        d[pdf_name("/Filter")] = pdf_name("/FlateDecode")
        return generic.StreamObject(d, encoded_data=data)
    return generic.StreamObject(d, stream_data=data)


def _font_objects(writer: BasePdfFileWriter, fs: _FontSubset) -> generic.IndirectObject:
    n = generic.NameObject
    font_file = writer.add_object(_stream(
        fs.font_file, {n("/Length1"): generic.NumberObject(fs.font_file_length)}, compressed=True))
    descriptor = writer.add_object(generic.DictionaryObject({
        n("/Type"): n("/FontDescriptor"), n("/FontName"): n("/" + fs.ps_name),
        n("/Flags"): generic.NumberObject(6),
        n("/FontBBox"): generic.ArrayObject(generic.NumberObject(v) for v in fs.bbox),
        n("/ItalicAngle"): generic.NumberObject(0),
        n("/Ascent"): generic.NumberObject(fs.ascent),
        n("/Descent"): generic.NumberObject(fs.descent),
        n("/CapHeight"): generic.NumberObject(fs.cap_height),
        n("/StemV"): generic.NumberObject(80),
        n("/FontFile2"): font_file,
    }))
    w = generic.ArrayObject([generic.NumberObject(0),
                             generic.ArrayObject(map(generic.NumberObject, fs.advances))])
    cid_font = writer.add_object(generic.DictionaryObject({
        n("/Type"): n("/Font"), n("/Subtype"): n("/CIDFontType2"),
        n("/BaseFont"): n("/" + fs.ps_name),
        n("/CIDSystemInfo"): generic.DictionaryObject({
            n("/Registry"): generic.TextStringObject("Adobe"),
            n("/Ordering"): generic.TextStringObject("Identity"),
            n("/Supplement"): generic.NumberObject(0)}),
        n("/FontDescriptor"): descriptor, n("/W"): w,
        n("/CIDToGIDMap"): n("/Identity"),
    }))
    return writer.add_object(generic.DictionaryObject({
        n("/Type"): n("/Font"), n("/Subtype"): n("/Type0"), n("/BaseFont"): n("/" + fs.ps_name),
        n("/Encoding"): n("/Identity-H"),
        n("/DescendantFonts"): generic.ArrayObject([cid_font]),
        n("/ToUnicode"): writer.add_object(_stream(zlib.compress(fs.to_unicode),
                                                   compressed=True)),
    }))


def _layout(fs: _FontSubset, lines: tuple[str, ...], width: float, height: float,
            color: tuple[float, float, float]) -> bytes:
    """Fit the lines in the box: one size for all lines, centred vertically, left-aligned."""
    pad = min(2.0, width * 0.03)
    widest = max(sum(fs.widths.get(fs.gid_of.get(c, 0), 500) for c in line) for line in lines)
    size = min((height - 2 * pad) / (len(lines) * 1.2), (width - 2 * pad) * 1000 / max(widest, 1))
    size = max(min(size, 10.0), 2.0)
    leading = size * 1.2
    top = (height + leading * len(lines)) / 2 - size * 0.95
    ops = [b"q", b"%.3f %.3f %.3f rg" % color, b"BT", b"/F1 %.2f Tf" % size]
    ops.append(b"%.2f %.2f Td" % (pad, top))
    for i, line in enumerate(lines):
        if i:
            ops.append(b"0 %.2f Td" % -leading)
        hexed = "".join(f"{fs.gid_of.get(c, 0):04X}" for c in line)
        ops.append(f"<{hexed}> Tj".encode("ascii"))
    ops += [b"ET", b"Q"]
    return b"\n".join(ops)


class _PrebuiltStamp:
    """What pyHanko calls to set a widget's appearance (duck-typed like its stamps)."""

    def __init__(self, writer: BasePdfFileWriter, box: layout.BoxConstraints,
                 lines: tuple[str, ...], color: tuple[float, float, float]) -> None:
        self.writer, self.box, self.lines, self.color = writer, box, lines, color

    def apply_appearance(self, annot: generic.DictionaryObject) -> None:
        chars = _stamp_chars(self.lines)
        fs = _shared_subset()
        if chars <= fs.gid_of.keys():
            font_ref = _shared_font_in(self.writer, fs) or _font_objects(self.writer, fs)
        else:  # a character the repertoire lacks: a subset of the whole font, for this stamp
            fs = _subset_for(chars)
            font_ref = _font_objects(self.writer, fs)
        w, h = float(self.box.width), float(self.box.height)
        content = _layout(fs, self.lines, w, h, self.color)
        n = generic.NameObject
        xobj = _stream(zlib.compress(content), {
            n("/Type"): n("/XObject"), n("/Subtype"): n("/Form"),
            n("/BBox"): generic.ArrayObject([generic.FloatObject(0), generic.FloatObject(0),
                                             generic.FloatObject(w), generic.FloatObject(h)]),
            n("/Resources"): generic.DictionaryObject({
                n("/Font"): generic.DictionaryObject({n("/F1"): font_ref}),
            }),
        }, compressed=True)
        annot[n("/AP")] = generic.DictionaryObject({n("/N"): self.writer.add_object(xobj)})
        if "/AS" in annot:
            del annot["/AS"]


class VietnameseStampStyle(BaseStampStyle):
    """A stamp style whose text is fixed when the signature is prepared."""

    def __init__(self, lines: tuple[str, ...], color: tuple[float, float, float] = (0, 0, 0.55)
                 ) -> None:
        super().__init__(border_width=0)
        self.lines = lines
        self.color = color

    def create_stamp(self, writer: BasePdfFileWriter, box: layout.BoxConstraints,
                     text_params: dict) -> _PrebuiltStamp:  # type: ignore[override, type-arg]
        return _PrebuiltStamp(writer, box, self.lines, self.color)


def warm_up(names: list[str]) -> None:
    """Build the stamp fonts ahead of a batch: the shared one, and a subset of its own for a
    signer whose name the repertoire does not cover."""
    from datetime import UTC
    shared = _shared_subset()
    for name in names:
        chars = _stamp_chars(stamp_lines(name, datetime.now(UTC)))
        if not chars <= shared.gid_of.keys():
            _subset_for(chars)
