"""Certificates, OCSP responses and CRLs parsed once per encoding, and shared.

The records of a class carry the same certificates and the same revocation answers: the
signer fetches an OCSP response once per validity window and every record sealed in it
embeds the same bytes. Verification used to parse each of them again for every record
(and four times within one: pyHanko's DSS reader and its validation-context builder, once
for the signatures and once for the archive timestamp), and with each fresh object went
every property asn1crypto computes on first use — name hashes, key identifiers, digests —
which path validation asks for thousands of times.

An asn1crypto value is a function of its encoding, and neither pyHanko nor its
certificate validator writes to the ones they are given. asn1crypto parses lazily, though,
and its lazy parsing is not safe to share between threads, so each thread keeps its own
objects (a verification runs in one thread). The cache is bounded; the least recently
used encoding goes first.

Since nothing writes to them, a shared value's encoding — and that of the parts path
validation asks for it most (its names, its key, its to-be-signed part) — is what it was
when read. asn1crypto's ``dump`` cannot know that: before returning it walks every part
parsed so far, looking for a change (certificates, names and keys were dumped some two
thousand times per record, for fingerprints, comparisons and memo keys, a twentieth of
the verification). A shared value's ``dump`` returns the encoding it read
(:class:`_Encoding`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, TypeVar

from asn1crypto import crl, ocsp, x509
from asn1crypto.core import Asn1Value

LIMIT = 2048
"""Encodings kept per thread: a province's CA chains, signers and current OCSP answers."""

_Parsed = TypeVar("_Parsed", x509.Certificate, ocsp.OCSPResponse, crl.CertificateList)
_local = threading.local()


def load(kind: type[_Parsed], der: bytes) -> _Parsed:
    """``kind.load(der)``, the same object for the same encoding within this thread."""
    cache: OrderedDict[tuple[type, bytes], object] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    key = (kind, bytes(der))
    found = cache.get(key)
    if found is None:
        found = cache[key] = kind.load(key[1])
        _keep_encodings(found)
        if len(cache) > LIMIT:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    assert isinstance(found, kind)
    return found


def thread_memo(name: str) -> dict[Any, Any]:
    """This thread's memo called ``name``, for answers made of its shared objects (which
    must not be handed to another thread)."""
    memos: dict[str, dict[Any, Any]] | None = getattr(_local, "memos", None)
    if memos is None:
        memos = _local.memos = {}
    return memos.setdefault(name, {})


def kept(value: Asn1Value) -> bool:
    """Whether ``value`` is (part of) a shared value whose encoding is kept: one nothing
    writes to."""
    return isinstance(vars(value).get("dump"), _Encoding)


class _Encoding:
    """``dump`` for a value nothing writes to: the encoding asn1crypto gave when it was read.

    Held as the value's own ``dump`` attribute, so that every caller gets it. ``force``
    (re-encode as DER) is answered as asn1crypto answers it for the value as read, from a
    fresh parse of the same encoding, and is what ``dump`` returns from then on, as in
    asn1crypto. It holds no reference to the value (no reference cycle to collect).
    """

    __slots__ = ("encoded", "kind")

    def __init__(self, value: Asn1Value) -> None:
        self.kind = type(value)
        self.encoded: bytes = value.dump()

    def __call__(self, force: bool = False) -> bytes:
        if force:
            self.encoded = self.kind.load(self.encoded).dump(force=True)
        return self.encoded


def _keep_encodings(value: x509.Certificate | ocsp.OCSPResponse | crl.CertificateList) -> None:
    """Give ``value`` and the parts path validation asks for most an :class:`_Encoding`.

    Reading those parts parses them; a damaged value is left as asn1crypto made it, to
    fail (or not) where and when it always did, lazily.
    """
    try:
        parts: list[Asn1Value] = [value]
        if isinstance(value, x509.Certificate):
            tbs = value["tbs_certificate"]
            parts += [tbs, value.subject, value.subject.chosen, value.issuer,
                      value.issuer.chosen, value.public_key]
        elif isinstance(value, crl.CertificateList):
            parts += [value.issuer, value.issuer.chosen]
        encodings = [(part, _Encoding(part)) for part in parts]
    except Exception:  # asn1crypto's errors are ValueErrors, mostly: any of them
        return
    for part, encoding in encodings:
        part.dump = encoding  # type: ignore[method-assign]
