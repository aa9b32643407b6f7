"""A record whose damage is found only when an object is read still gets a clear refusal.

pyHanko parses objects lazily: a byte flipped inside a signature dictionary's hex string
passes the opening of the file and surfaces deep inside verification. It must come out as
:class:`UnusableInput` (which the archive, the API and the transfer check turn into a named
problem), never as a library's exception — the transfer test flips a byte in the middle of
a record, and where it lands depends on the run.
"""

from __future__ import annotations

import re

import pytest

from hsdt.domain.errors import UnusableInput


def test_a_damaged_hex_string_in_a_signature_is_unusable_input(world) -> None:  # type: ignore[no-untyped-def]
    pdf = world.sign_until(world.records[0], stop=lambda f: f.role.value == "homeroom_teacher")
    match = list(re.finditer(rb"/Contents <([0-9a-fA-F]{64})", pdf))[-1]
    damaged = pdf[:match.start(1) + 10] + b"G" + pdf[match.start(1) + 11:]
    assert len(damaged) == len(pdf)
    with pytest.raises(UnusableInput, match="Không đọc được tệp PDF"):
        world.verifier().verify(damaged)
