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
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TypeVar

from asn1crypto import crl, ocsp, x509

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
        if len(cache) > LIMIT:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    assert isinstance(found, kind)
    return found
