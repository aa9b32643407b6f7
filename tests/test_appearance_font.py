"""The signature stamp's font subsets: cut from a once-per-process Vietnamese repertoire font,
they must draw exactly what a subset of the whole font draws."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import pikepdf
import pytest
from conftest import World
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from hsdt.domain.plans import FieldAssignment
from hsdt.signing import appearance
from hsdt.signing.record_state import read_record

NAMES = ["Nguyễn Thị Hương", "Trần Văn Đức", "Lê Hoàng Yến", "ĐẶNG QUỐC BẢO", "Võ Thị Ánh Tuyết"]


def _chars(name: str) -> frozenset[str]:
    return appearance._stamp_chars(
        appearance.stamp_lines(name, datetime(2026, 5, 20, 8, 30, tzinfo=UTC)))


def _outlines(fs: appearance._FontSubset) -> dict[str, tuple[object, ...]]:
    """Each character's glyph as drawn: its coordinates, end points and advance."""
    font = TTFont(io.BytesIO(zlib.decompress(fs.font_file)))
    glyf, hmtx, order = font["glyf"], font["hmtx"].metrics, font.getGlyphOrder()
    out: dict[str, tuple[object, ...]] = {}
    for ch, gid in fs.gid_of.items():
        name = order[gid]
        g = glyf[name]
        coords = tuple(map(tuple, g.getCoordinates(glyf)[0])) if g.numberOfContours else ()
        out[ch] = (coords, hmtx[name][0])
    return out


def test_a_signers_subset_draws_what_the_whole_fonts_subset_draws() -> None:
    for name in NAMES:
        chars = _chars(name)
        assert all(ord(c) in appearance._REPERTOIRE for c in chars)
        from_repertoire = appearance._subset_for(chars)
        whole = appearance._subset_font(appearance._font_bytes(), sorted(map(ord, chars)))
        cmap = whole.getBestCmap()
        glyf, hmtx = whole["glyf"], whole["hmtx"].metrics
        expected = {}
        for ch in chars:
            g = glyf[cmap[ord(ch)]]
            coords = tuple(map(tuple, g.getCoordinates(glyf)[0])) if g.numberOfContours else ()
            expected[ch] = (coords, hmtx[cmap[ord(ch)]][0])
        assert _outlines(from_repertoire) == expected, name
        assert set(from_repertoire.gid_of) == chars  # every character of the stamp is drawn


def test_the_repertoire_covers_every_vietnamese_letter() -> None:
    letters = ("aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụ"
               "ưừứửữựvxyỳýỷỹỵ")
    cmap = TTFont(io.BytesIO(appearance._repertoire_font())).getBestCmap()
    for ch in letters + letters.upper():
        assert ord(ch) in cmap, ch
    assert len(appearance._repertoire_font()) < len(appearance._font_bytes()) // 4


def test_a_character_outside_the_repertoire_is_found_in_the_whole_font() -> None:
    rare = "\u0110\u01b0\u1ebf\u2116"  # Đ ư ế and the numero sign, which the repertoire leaves out
    assert ord("\u2116") not in appearance._REPERTOIRE
    fs = appearance._subset_for(frozenset(rare))
    assert set(fs.gid_of) == set(rare)
    assert all(gid > 0 for gid in fs.gid_of.values())  # a real glyph, not .notdef


# -- one font per record ---------------------------------------------------------------

def _stamp_font(widget: pikepdf.Object) -> pikepdf.Object | None:
    n = widget.get("/AP", {}).get("/N")
    if n is None or "/Resources" not in n:
        return None  # not signed yet: an empty appearance
    return n.Resources.Font.F1


def _stamp_text(widget: pikepdf.Object) -> list[str]:
    """The stamp's lines as a reader extracts them: each shown string's glyph ids, mapped
    through the font's own ToUnicode CMap."""
    font = _stamp_font(widget)
    assert font is not None
    to_unicode = {int(g, 16): chr(int(u, 16)) for g, u in
                  re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]{4})>", font.ToUnicode.read_bytes())}
    lines = []
    for operands, op in pikepdf.parse_content_stream(widget.AP.N):
        if op == pikepdf.Operator("Tj"):
            raw = bytes(operands[0])
            lines.append("".join(to_unicode[int.from_bytes(raw[i:i + 2], "big")]
                                 for i in range(0, len(raw), 2)))
    return lines


def test_every_stamp_of_a_record_draws_with_the_one_font_the_first_stamp_embedded(
        sealed: bytes) -> None:
    signers = {str(s.field_name): s.signer_cert.subject.native["common_name"]
               for s in read_record(sealed).signatures}
    with pikepdf.open(io.BytesIO(sealed)) as pdf:
        stamps = {str(f.T): f for f in pdf.Root.AcroForm.Fields if _stamp_font(f) is not None}
        assert stamps.keys() == signers.keys() and len(stamps) > 2
        fonts = {_stamp_font(f).objgen for f in stamps.values()}  # type: ignore[union-attr]
        assert len(fonts) == 1, fonts
        programs = [o for o in pdf.objects if isinstance(o, pikepdf.Dictionary)
                    and o.get("/Type") == "/FontDescriptor" and "NotoSerif" in str(o.FontName)]
        assert len(programs) == 1  # embedded once, not once per signer
        for name, widget in stamps.items():
            # Drawn with the shared font, each stamp still reads as its own signer's.
            assert _stamp_text(widget)[0] == f"Ký bởi: {signers[name]}", name


def _first_signature(world: World) -> bytes:
    record = world.records[1]
    done: list[str] = []

    def stop(f: FieldAssignment) -> bool:
        done.append(f.name)
        return len(done) > 1

    return world.sign_until(record, stop)


def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
    return IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)


def _altered(pdf: bytes, change: Callable[[pikepdf.Object], None]) -> bytes:
    """The file with its stamp font changed by ``change`` (signatures no longer matter here:
    what is tested is whether the next stamp would draw with that font)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        font = next(_stamp_font(f) for f in doc.Root.AcroForm.Fields if _stamp_font(f) is not None)
        change(font)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()


def _set_width(font: pikepdf.Object) -> None:
    font.DescendantFonts[0].W[1][5] = 999


def _set_program(font: pikepdf.Object) -> None:
    program = font.DescendantFonts[0].FontDescriptor.FontFile2
    data = bytearray(program.read_bytes())
    data[-1] ^= 1
    program.write(bytes(data))


def _set_unicode_map(font: pikepdf.Object) -> None:
    font.ToUnicode.write(font.ToUnicode.read_bytes().replace(b"<0041>", b"<0042>", 1))


def _set_name(font: pikepdf.Object) -> None:
    font.BaseFont = pikepdf.Name("/HSDTZZ+NotoSerif-Regular")


@pytest.mark.parametrize("change", [_set_width, _set_program, _set_unicode_map, _set_name])
def test_a_stamp_font_that_is_not_exactly_ours_is_never_drawn_with(
        world: World, change: Callable[[pikepdf.Object], None]) -> None:
    shared = appearance._shared_subset()
    pdf = _first_signature(world)
    assert appearance._shared_font_in(_writer(pdf), shared) is not None  # found when intact
    assert appearance._shared_font_in(_writer(_altered(pdf, change)), shared) is None


def _stamp_on(pdf: bytes, signer: str) -> tuple[generic.IndirectObject, generic.IndirectObject | None]:
    """The font a new stamp for ``signer`` draws with, and the shared one the file holds."""
    writer = _writer(pdf)
    annot = generic.DictionaryObject()
    box = layout.BoxConstraints(width=170, height=62)
    lines = appearance.stamp_lines(signer, datetime(2026, 5, 20, 8, 30, tzinfo=UTC))
    appearance._PrebuiltStamp(writer, box, lines, (0, 0, 0.55)).apply_appearance(annot)
    font = annot["/AP"]["/N"]["/Resources"]["/Font"].raw_get("/F1")
    return font, appearance._shared_font_in(writer, appearance._shared_subset())


def test_a_later_stamp_reuses_the_font_and_a_rare_name_brings_its_own(world: World) -> None:
    pdf = _first_signature(world)
    font, shared = _stamp_on(pdf, "Nguyễn Thị Hương")
    assert shared is not None and font.reference == shared.reference
    font, shared = _stamp_on(pdf, "Nguyễn Văn № 2")  # the numero sign is outside the repertoire
    assert shared is not None and font.reference != shared.reference
    fs = appearance._subset_for(frozenset("Nguyễn Văn № 2") | appearance._ALWAYS)
    assert appearance._is_font(font.get_object(), fs)  # its own subset, which draws the №


def test_a_tampered_stamp_font_makes_the_next_stamp_embed_its_own(world: World) -> None:
    font, shared = _stamp_on(_altered(_first_signature(world), _set_width), "Trần Văn Đức")
    assert shared is None
    assert appearance._is_font(font.get_object(), appearance._shared_subset())
