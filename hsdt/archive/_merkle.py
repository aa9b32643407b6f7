"""Merkle tree arithmetic of RFC 9162 §2.1, independent of where the hashes are kept.

Everything here is pure: hashing, the verification algorithms an auditor runs (§2.1.3.2 and
§2.1.4.2), and proof generation over a callback that returns the hash of a *complete* subtree
(``get(level, index)`` = the root of leaves ``[index·2^level, (index+1)·2^level)``). Any such
subtree of a log only ever grows to the right, so its hash never changes once written and can
be stored; every proof or historical root then needs O(log n) stored hashes and O(log n)
hashing for the ragged right edge.

Stored order ("post-order", as in Go's ``golang.org/x/mod/sumdb/tlog``): appending leaf ``i``
writes its leaf hash followed by the hash of every subtree that leaf completes, lowest level
first. The hashes of a log of ``n`` leaves are thus one append-only sequence of
``2n - popcount(n)`` hashes, and the append of leaf ``i`` owns the positions
``[stored_hash_count(i), stored_hash_count(i + 1))``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) of RFC 9162: the hash of an empty string."""

HashGetter = Callable[[int, int], bytes]
"""``get(level, index)``: the stored hash of a complete, aligned subtree."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data). The prefix keeps a leaf from being passed off as a node (§2.1.1)."""
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), the hash of an interior node (§2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def stored_hash_index(level: int, index: int) -> int:
    """Position of the hash of subtree ``(level, index)`` in the post-order sequence."""
    # That subtree is completed by the append of leaf m = (index+1)·2^level − 1, which writes
    # its hashes right after the stored_hash_count(m) = 2m − popcount(m) written before it,
    # leaf first, then one per level.
    m = ((index + 1) << level) - 1
    return 2 * m - m.bit_count() + level


def stored_hash_count(size: int) -> int:
    """How many hashes a log of ``size`` leaves stores: one per complete subtree."""
    return 2 * size - size.bit_count()


def locate_stored_hash(position: int) -> tuple[int, int, int]:
    """Inverse of :func:`stored_hash_index`: ``(leaf appended, level, index)`` of a position."""
    if position < 0:
        raise ValueError("negative position")
    # stored_hash_count is increasing; find the last leaf i with count(i) <= position.
    lo, hi = 0, position + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stored_hash_count(mid) <= position:
            lo = mid
        else:
            hi = mid - 1
    leaf = lo
    level = position - stored_hash_count(leaf)
    return leaf, level, leaf >> level


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(lo: int, hi: int, get: HashGetter) -> bytes:
    """MTH(D[lo:hi]) from stored complete subtrees, for the ranges RFC 9162's recursion visits.

    A range is either a complete aligned subtree (one stored hash) or a ragged right edge,
    split at the largest power of two, whose left part is again complete and aligned.
    """
    n = hi - lo
    if n <= 0:
        if n == 0:
            return EMPTY_ROOT
        raise ValueError("empty or inverted range")
    # Walk down the right edge collecting the complete left parts, then fold from the right.
    parts: list[bytes] = []
    while True:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            parts.append(get(n.bit_length() - 1, lo // n))
            break
        k = _largest_power_of_two_below(n)
        if lo % k:
            # Not a range of the RFC recursion; still correct, just not one stored hash.
            parts.append(subtree_hash(lo, lo + k, get))
        else:
            parts.append(get(k.bit_length() - 1, lo // k))
        lo += k
    acc = parts[-1]
    for left in reversed(parts[:-1]):
        acc = node_hash(left, acc)
    return acc


def inclusion_path(index: int, size: int, get: HashGetter) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} outside a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    # Top-down the recursion yields the siblings root-side first; reverse at the end.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(subtree_hash(lo + k, hi, get))
            hi = lo + k
        else:
            path.append(subtree_hash(lo, lo + k, get))
            lo += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, get: HashGetter) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (empty when either tree is empty or equal)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[lo:hi], b), unrolled: each step appends one hash *after* the rest, so the
    # steps are collected top-down and reversed.
    tail: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                tail.append(subtree_hash(lo, hi, get))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            tail.append(subtree_hash(lo + k, hi, get))
            hi = lo + k
        else:
            tail.append(subtree_hash(lo, lo + k, get))
            lo, m, complete = lo + k, m - k, False
    tail.reverse()
    return tail


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` place ``leaf_hash`` at ``index`` in the tree ``root``?

    Pure, so that an auditor needs only a tree head they trust. Malformed input is a failed
    proof, never an exception and never a pass.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    if isinstance(index, bool) or isinstance(size, bool):
        return False
    # 1. The index must lie inside the tree.
    if not (isinstance(index, int) and isinstance(size, int) and 0 <= index < size):
        return False
    # 2. fn walks up from the leaf, sn from the last leaf; r accumulates the root.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        # 3. A hash left over once the root is reached means a proof for another tree.
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Right edge: skip the levels where this node has no right sibling.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 4. The path must have reached the root, and give the root we trust.
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``new_root`` the tree ``old_root`` with leaves appended?

    The trivial cases the RFC leaves out are decided here: equal sizes need an empty proof and
    equal roots; an empty old tree is a prefix of everything, with an empty proof. Malformed
    input is a failed proof.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if isinstance(old_size, bool) or isinstance(new_size, bool):
        return False
    if not (isinstance(old_size, int) and isinstance(new_size, int) and 0 <= old_size <= new_size):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    # 1. A non-trivial proof is never empty.
    if not proof:
        return False
    path = list(proof)
    # 2. If the old tree is a complete subtree, its root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3–4. fn, sn: last leaf of each tree; skip the levels where the old tree's last leaf is a
    # right child (those nodes are entirely inside both trees).
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Both roots are rebuilt from the same starting node.
    fr = sr = path[0]
    # 6. Left siblings feed both trees; right siblings only the new one.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. Both roots must match, and the path must have reached the new root.
    return fr == old_root and sr == new_root and sn == 0
