"""Answers that asn1crypto and pyHanko-certvalidator compute afresh for values that do not
change, kept: part of the measured speed-ups (:mod:`hsdt.signing._speedups`, its table).

1. An object identifier's dotted form (:func:`dotted`), a pure function of its encoded
   contents, which asn1crypto works out in a Python loop per parsed identifier: every
   attribute type, algorithm and extension of every CMS, certificate and OCSP response
   of a record, several thousand of them.
2. A shared name's string form for dictionaries and sets (:func:`name_hashable`). Path
   building and the certificate registries key their maps by it, and asn1crypto builds
   it again, attribute by attribute, at each request. Only names of the shared values of
   :mod:`hsdt.signing.parsed`, which nothing writes to, keep it.
3. A weak-algorithm policy's verdict on a signature mechanism with a key
   (:func:`signature_algorithm_allowed`): the same two or three answers, asked for every
   certificate, CMS and OCSP response of a record. Kept per policy object, by what the
   verdict depends on.
4. That a signature is valid (:func:`validate_raw`): the same certificates and CRLs come
   with every record of a class, and their signatures were checked again each time (77
   checks per record, 60 of them different, half of those seen in the record before).
   Only a success is kept, by every byte the check reads; a failure is checked again.
5. Where each attribute type sits among a CMS's signed or unsigned attributes
   (:func:`find_cms_attribute_iter`): validation looks some ten attributes up by type in
   each CMS, each lookup reading the type of every attribute again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar, cast

from asn1crypto import algos, cms, core, keys, x509
from pyhanko.sign import general
from pyhanko.sign.general import MultivaluedAttributeError, NonexistentAttributeError
from pyhanko_certvalidator import sig_validate
from pyhanko_certvalidator.policy_decl import AlgorithmUsageConstraint, DisallowWeakAlgorithmsPolicy

from hsdt.signing import parsed

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep ``value`` under ``key``; a memo at ``limit`` entries forgets them all first.

    The memos live as long as their process (or pyHanko's default policy): all at once is
    the cheapest bound, and what they hold is refilled within a record or two."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


# -- 1. object identifiers -----------------------------------------------------------------

original_dotted = core.ObjectIdentifier.dotted


@functools.lru_cache(maxsize=4096)
def _dotted_of(contents: bytes) -> str:
    # asn1crypto's ObjectIdentifier.dotted, on the contents alone (it reads nothing else)
    output: list[str] = []
    part = 0
    for byte in contents:
        part = part * 128 + (byte & 127)
        if byte & 0x80 == 0:  # the last byte of a subidentifier
            if not output:
                first = 2 if part >= 80 else 1 if part >= 40 else 0
                output += [str(first), str(part - 40 * first)]
            else:
                output.append(str(part))
            part = 0
    return ".".join(output)


def _dotted(self: core.ObjectIdentifier) -> str:
    if self._dotted is None:
        contents = self.contents
        if type(contents) is not bytes:
            return cast(str, original_dotted.fget(self))  # type: ignore[attr-defined]
        self._dotted = _dotted_of(contents)
    return cast(str, self._dotted)


dotted = property(_dotted, doc=original_dotted.__doc__)

# -- 2. names of shared values --------------------------------------------------------------

original_name_hashable = x509.Name.hashable
_HASHABLE = "_hsdt_hashable"


def _name_hashable(self: x509.Name) -> str:
    if not parsed.kept(self):
        return cast(str, original_name_hashable.fget(self))  # type: ignore[attr-defined]
    found = self.__dict__.get(_HASHABLE)
    if found is None:
        found = self.__dict__[_HASHABLE] = original_name_hashable.fget(self)  # type: ignore[attr-defined]
    return cast(str, found)


name_hashable = property(_name_hashable, doc=original_name_hashable.__doc__)

# -- 3. weak-algorithm verdicts ---------------------------------------------------------------

original_signature_algorithm_allowed = DisallowWeakAlgorithmsPolicy.signature_algorithm_allowed
_VERDICTS = "_hsdt_signature_verdicts"
VERDICTS_KEPT = 256
"""Verdicts kept per policy (all forgotten at once when full): mechanisms × keys in use."""


def signature_algorithm_allowed(self: DisallowWeakAlgorithmsPolicy,
                                algo: algos.SignedDigestAlgorithm, moment: datetime | None,
                                public_key: keys.PublicKeyInfo | None
                                ) -> AlgorithmUsageConstraint:
    """pyHanko-certvalidator's verdict, kept on the policy object for the mechanism's
    encoding and the key's encoding: all it reads besides the policy's own settings, which
    are fixed when it is made. This policy ignores the moment (it bans algorithms outright,
    at any date; pinned pyHanko-certvalidator, and a test holds it to that). Verdicts are
    immutable values. A subclass, which may decide otherwise, is asked every time."""
    if type(self) is not DisallowWeakAlgorithmsPolicy:
        return original_signature_algorithm_allowed(self, algo, moment, public_key)
    try:
        key = (algo.dump(), public_key.dump() if public_key is not None else None)
    except Exception:  # a damaged value: the original decides on it in its own way
        return original_signature_algorithm_allowed(self, algo, moment, public_key)
    verdicts: dict[tuple[bytes, bytes | None], AlgorithmUsageConstraint] = \
        self.__dict__.setdefault(_VERDICTS, {})
    found = verdicts.get(key)
    if found is None:
        found = remember(verdicts, key,
                         original_signature_algorithm_allowed(self, algo, moment, public_key),
                         VERDICTS_KEPT)
    return found


# -- 4. valid signatures ------------------------------------------------------------------------

original_validate_raw = sig_validate._validate_raw
_valid: dict[tuple[bytes, bytes, bytes, bytes, str | None, bool], None] = {}
VALID_KEPT = 2048
"""Valid signatures kept (all forgotten at once when full): a province's CA and signer
certificates, its CRLs and a batch's worth of OCSP responses."""
LARGEST_KEPT = 1 << 14
"""Signed data longer than this (a large CRL) is checked every time, not kept: what is kept
stays under some 32 MB per process, whatever the records carry."""


def validate_raw(signature: bytes, signed_data: bytes, public_key_info: keys.PublicKeyInfo,
                 signature_algorithm: algos.SignedDigestAlgorithm,
                 context: sig_validate.SignatureValidationContext =
                 sig_validate.DEFAULT_VALIDATION_CONTEXT) -> None:
    """pyHanko-certvalidator's check of a signature over ``signed_data`` with a public key
    (raises if it is not valid), a success kept by the signature, the data, the key's and
    the mechanism's encodings and the context's two settings: all the check reads. The
    check is a pure function of those bytes, so the same bytes are valid again."""
    try:
        key = (bytes(signature), bytes(signed_data), public_key_info.dump(),
               signature_algorithm.dump(), context.contextual_md_algorithm, context.prehashed)
    except Exception:  # a damaged value: the original fails on it in its own way
        key = None
    if key is None or len(signed_data) > LARGEST_KEPT:
        original_validate_raw(signature, signed_data, public_key_info, signature_algorithm, context)
        return
    if key in _valid:
        return
    original_validate_raw(signature, signed_data, public_key_info, signature_algorithm, context)
    remember(_valid, key, None, VALID_KEPT)


# -- 5. attributes of a CMS, by type --------------------------------------------------------------

original_attribute_iter = general.find_cms_attribute_iter
original_unique_attribute = general.find_unique_cms_attribute
_INDEX = "_hsdt_attribute_index"


def _attribute_index(attrs: object) -> dict[str, list[int]] | None:
    """The positions of each attribute type in ``attrs``, read once per attributes object
    (while it is unchanged); None for anything else, or for attributes whose types cannot
    all be read (pyHanko's own lookup then meets the problem where it always did)."""
    if type(attrs) is not cms.CMSAttributes or attrs._mutated:
        return None
    found: dict[str, list[int]] | None = attrs.__dict__.get(_INDEX)
    if found is None:
        index: dict[str, list[int]] = {}
        try:
            for position, attr in enumerate(attrs):
                index.setdefault(attr["type"].native, []).append(position)
        except Exception:
            return None
        found = attrs.__dict__[_INDEX] = index
    return found


def find_cms_attribute_iter(attrs: Iterable[cms.CMSAttribute] | None, name: str) -> Iterator[Any]:
    """pyHanko's ``find_cms_attribute_iter``: the values of every attribute of type
    ``name``, in order; the attributes' types read once per attributes object."""
    if not attrs:
        return
    index = _attribute_index(attrs)
    if index is None:
        yield from original_attribute_iter(attrs, name)
        return
    listed = cast(cms.CMSAttributes, attrs)
    for position in index.get(name, ()):
        yield from listed[position]["values"]


def find_unique_cms_attribute(attrs: Iterable[cms.CMSAttribute] | None, name: str) -> Any:
    """pyHanko's ``find_unique_cms_attribute`` (its code, its errors) over
    :func:`find_cms_attribute_iter`."""
    gen = find_cms_attribute_iter(attrs, name)
    try:
        result = next(gen)
    except StopIteration:
        raise NonexistentAttributeError(f"Unable to locate attribute {name}.") from None
    try:
        next(gen)
        raise MultivaluedAttributeError(
            f"Expected single-valued {name} attribute, but found multiple")
    except StopIteration:
        return result
