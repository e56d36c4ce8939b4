"""The Merkle tree of RFC 6962 §2.1 (kept as RFC 9162 §2.1 restates it): hashes, proofs, and their verification.

Pure functions over bytes; no I/O. A tree of size n is stored as its *complete subtrees*: the node at (level, idx)
covers leaves [idx * 2^level, (idx + 1) * 2^level). Every hash a proof needs is a fold of at most log2(n) such nodes,
so the server fetches O(log^2 n) rows and never rehashes the log.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), and rejects every malformed
input (wrong sizes, wrong lengths, trailing or missing path elements) rather than guessing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

Node = tuple[int, int]  # (level, idx)


def hash_leaf(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    assert n >= 2, n
    return 1 << ((n - 1).bit_length() - 1)


def decompose(start: int, end: int) -> list[Node]:
    """The complete subtrees that make up leaves [start, end), left to right, largest first.

    For every range the RFC's recursion visits, folding these right to left gives MTH(D[start:end]).
    """
    nodes: list[Node] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else 63
        while (1 << level) > end - start:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: list[bytes]) -> bytes:
    """Combine the hashes of `decompose` (left to right) into the hash of their range."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = hash_children(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make PATH(index, D[0:size]), in proof order (nearest the leaf first)."""
    assert 0 <= index < size, (index, size)
    out: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make PROOF(first, D[0:second]) (RFC 6962 §2.1.2), in proof order."""
    assert 0 < first <= second, (first, second)
    out: list[tuple[int, int]] = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                out.append((start, end))
            break
        k = split_point(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole = False
    out.reverse()
    return out


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    needed: set[Node] = set()
    for start, end in ranges:
        needed.update(decompose(start, end))
    return needed


def resolve(ranges: list[tuple[int, int]], nodes: dict[Node, bytes]) -> list[bytes]:
    return [fold([nodes[node] for node in decompose(start, end)]) for start, end in ranges]


def root_from_nodes(size: int, get: Callable[[Node], bytes]) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return fold([get(node) for node in decompose(0, size)])


# -- an in-memory tree, for tests and for verifiers that hold every leaf ------------------------------------------


def root_of(leaf_hashes: list[bytes]) -> bytes:
    """MTH over the leaf hashes, straight from the RFC's definition."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return hash_children(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def inclusion_proof(index: int, leaf_hashes: list[bytes]) -> list[bytes]:
    return [root_of(leaf_hashes[s:e]) for s, e in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(first: int, leaf_hashes: list[bytes]) -> list[bytes]:
    if first == 0 or first == len(leaf_hashes):
        return []
    return [root_of(leaf_hashes[s:e]) for s, e in consistency_ranges(first, len(leaf_hashes))]


class CompactTree:
    """The right edge of a growing tree: one hash per set bit of its size. Appending reports each completed node."""

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, frontier: list[bytes] | None = None):
        # frontier: the hashes of decompose(0, size), left to right.
        self.size = size
        self.stack: list[bytes] = list(frontier or [])
        assert len(self.stack) == bin(size).count("1"), (size, len(self.stack))

    def append(self, leaf: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add a leaf hash; new complete subtrees (level >= 1) are appended to `completed` as (level, idx, hash)."""
        stack = self.stack
        stack.append(leaf)
        size = self.size
        level = 0
        # Each trailing one bit of the old size is a complete subtree that now merges with the new right sibling.
        while size & 1:
            right = stack.pop()
            merged = _sha256(b"\x01" + stack.pop() + right).digest()
            stack.append(merged)
            size >>= 1
            level += 1
            if completed is not None:
                completed.append((level, ((self.size + 1) >> level) - 1, merged))
        self.size += 1

    def append_subtree(self, level: int, digest: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add a complete subtree of 2^level leaves (the size must be a multiple of 2^level); nodes it closes above
        `level` are appended to `completed`. How a verifier joins parts of the log that it hashed separately."""
        assert self.size % (1 << level) == 0, (self.size, level)
        stack = self.stack
        stack.append(digest)
        size = self.size >> level
        self.size += 1 << level
        while size & 1:
            right = stack.pop()
            merged = _sha256(b"\x01" + stack.pop() + right).digest()
            stack.append(merged)
            size >>= 1
            level += 1
            if completed is not None:
                completed.append((level, (self.size >> level) - 1, merged))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        return fold(self.stack)


# -- verification ----------------------------------------------------------------------------------------------


class ProofError(ValueError):
    """A proof that does not prove what it claims."""


def _check_hashes(path: list[bytes], *others: bytes) -> None:
    for item in (*path, *others):
        if not isinstance(item, bytes | bytearray) or len(item) != HASH_BYTES:
            raise ProofError("every hash must be 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that `path` proves `leaf` (at `index`) into; raises ProofError if malformed."""
    _check_hashes(path, leaf)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> None:
    """Raise ProofError unless `path` proves `leaf` at `index` in the tree of `size` leaves with `root`."""
    _check_hashes([], root)
    if root_from_inclusion(index, size, leaf, path) != root:
        raise ProofError("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the tree of `first` leaves is a prefix of the one of `second`."""
    _check_hashes(path, first_root, second_root)
    if first < 0 or second < first:
        raise ProofError(f"a tree of {second} cannot extend one of {first}")
    if first == second:
        if path or first_root != second_root:
            raise ProofError("equal sizes need equal roots and an empty proof")
        return
    if first == 0:
        if path:
            raise ProofError("an empty tree is consistent with anything, with an empty proof")
        return
    if not path:
        raise ProofError("an empty consistency proof between different sizes")
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a complete subtree
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != first_root:
        raise ProofError("the consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("the consistency proof does not lead to the second root")
