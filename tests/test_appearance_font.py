"""The signature stamp's font subsets: cut from a once-per-process Vietnamese repertoire font,
they must draw exactly what a subset of the whole font draws."""

from __future__ import annotations

import io
import zlib
from datetime import UTC, datetime

from fontTools.ttLib import TTFont

from hsdt.signing import appearance

NAMES = ["Nguyễn Thị Hương", "Trần Văn Đức", "Lê Hoàng Yến", "ĐẶNG QUỐC BẢO", "Võ Thị Ánh Tuyết"]


def _chars(name: str) -> frozenset[str]:
    lines = appearance.stamp_lines(name, datetime(2026, 5, 20, 8, 30, tzinfo=UTC))
    return frozenset(appearance._ALWAYS | {c for line in lines for c in line})


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
