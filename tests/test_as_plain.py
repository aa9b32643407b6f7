"""``as_plain`` is ``dataclasses.asdict`` for the trees the service converts (reports,
index entries): the same result, value for value and type for type."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import InitVar, asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple

from hsdt.domain.canonical import as_plain


class Point(NamedTuple):
    x: int
    y: Any


class Tags(list[Any]):
    pass


@dataclass(frozen=True)
class Leaf:
    name: str
    score: float | None = None
    when: datetime | None = None


@dataclass
class Base:
    leaves: tuple[Leaf, ...] = ()
    kind: ClassVar[str] = "not a field"


@dataclass
class Tree(Base):
    seed: InitVar[int] = 0
    by_key: dict[Any, Any] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    tags: Tags = field(default_factory=Tags)
    bag: set[int] = field(default_factory=set)
    amount: Decimal = Decimal("8.5")
    ordered: OrderedDict[str, Leaf] = field(default_factory=OrderedDict)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_a_tree_of_every_kind_converts_as_asdict_converts_it() -> None:
    leaf = Leaf("Toán", 8.25, datetime(2026, 5, 30, tzinfo=UTC))
    tree = Tree(leaves=(leaf, Leaf("Văn")), seed=3,
                by_key={("a", 1): [leaf, {"nested": (1, 2.5, None, True)}], 7: Point(1, leaf)},
                points=[Point(2, [leaf])], tags=Tags([leaf, "x"]), bag={1, 2},
                ordered=OrderedDict(first=leaf))
    ours, theirs = as_plain(tree), asdict(tree)
    assert _same(ours, theirs) and ours == theirs
    assert ours["bag"] is not tree.bag and ours["amount"] == Decimal("8.5")  # deep-copied
    assert "kind" not in ours and "seed" not in ours
    assert as_plain(leaf) == asdict(leaf) and as_plain([leaf]) == [asdict(leaf)]


def test_a_verification_report_converts_as_asdict_converts_it(world: Any, sealed: bytes) -> None:
    report = world.verifier().verify(sealed)
    assert len(report.signatures) >= 15
    assert _same(report.to_json(), asdict(report))
    # A byte inside the first stream's data: the middle of the file may fall in a signature's
    # hex /Contents, where a flipped digit makes the file unreadable rather than unsigned.
    tampered = bytearray(sealed)
    tampered[sealed.index(b"stream\n") + 100] ^= 1
    bad = world.verifier().verify(bytes(tampered))
    assert bad.problems and _same(bad.to_json(), asdict(bad))
