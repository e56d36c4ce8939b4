"""Pure parts of the ledger: validation, the canonical form against rfc8785, RFC 6962 vectors, checkpoints."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_engine.errors import EngineError
from voucher_engine.ledger import canonical, checkpoints, merkle, model
from voucher_engine.ledger.model import NewTransaction, Posting

from .conftest import AT, fund, redeem

# -- validation -------------------------------------------------------------------------------------------------------


def test_valid_transactions_pass_and_are_balanced():
    for tx in (fund("c1", {"iss_310000": 70, "iss_310104": 30}), redeem("c1", "m1", 5, "v1")):
        campaign_id, refs, accounts, amounts = model.validate(tx)
        assert campaign_id == "c1" and refs["campaign_id"] == "c1" and sum(amounts) == 0


@pytest.mark.parametrize(
    "postings, why",
    [
        ((Posting("escrow:c1", credit_fen=5), Posting("merchant:m1", debit_fen=4)), "differ"),
        (
            (
                Posting("escrow:c1", credit_fen=5),
                Posting("merchant:m1", debit_fen=5, credit_fen=0),
                Posting("merchant:m2", debit_fen=0),
            ),
            "exactly one",
        ),
        ((Posting("escrow:c1", credit_fen=5, debit_fen=5), Posting("merchant:m1", debit_fen=5)), "exactly one"),
        ((Posting("escrow:c1", credit_fen=-5), Posting("merchant:m1", debit_fen=-5)), "exactly one"),
        ((Posting("escrow:c2", credit_fen=5), Posting("merchant:m1", debit_fen=5)), "moves escrow:c2"),
        ((Posting("fiscal:iss_1", credit_fen=5), Posting("merchant:m1", debit_fen=5)), "may not credit"),
        ((Posting("escrow:c1", credit_fen=5),), "postings"),
        ((Posting("bank:x", credit_fen=5), Posting("merchant:m1", debit_fen=5)), "not an account"),
        ((Posting("escrow:c1", credit_fen=2**53), Posting("merchant:m1", debit_fen=2**53)), "2^53"),
    ],
)
def test_ill_formed_redemptions_are_refused(postings, why):
    tx = NewTransaction(kind="redeem", postings=postings, refs={}, at=AT, campaign_id="c1")
    with pytest.raises(EngineError) as caught:
        model.validate(tx)
    assert caught.value.code == "VALIDATION_ERROR" and why in caught.value.detail


@pytest.mark.parametrize(
    "tx",
    [
        NewTransaction("redeem", redeem("c1", "m1", 5, "v").postings, {}, datetime(2025, 1, 1), "c1"),  # naive time
        NewTransaction("payout", redeem("c1", "m1", 5, "v").postings, {}, AT, "c1"),
        NewTransaction("redeem", redeem("c1", "m1", 5, "v").postings, {"Bad-Key": "x"}, AT, "c1"),
        NewTransaction("redeem", redeem("c1", "m1", 5, "v").postings, {"price": 1.5}, AT, "c1"),
        NewTransaction("redeem", redeem("c1", "m1", 5, "v").postings, {"campaign_id": "c2"}, AT, "c1"),
        NewTransaction("redeem", redeem("c1", "m1", 5, "v").postings, {}, AT, None),
    ],
)
def test_bad_kind_time_or_refs_are_refused(tx):
    with pytest.raises(EngineError):
        model.validate(tx)


# -- canonical form ---------------------------------------------------------------------------------------------------

ref_values = st.recursive(
    st.one_of(
        st.text(max_size=40).filter(lambda s: "\x00" not in s), st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    ),
    lambda inner: st.dictionaries(st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    refs=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), ref_values, max_size=6),
    amount=st.integers(min_value=1, max_value=2**53 - 1),
    seq=st.integers(min_value=1, max_value=2**53 - 1),
    micros=st.integers(min_value=0, max_value=10**15),
    merchant=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
)
def test_canonical_is_rfc8785(refs, amount, seq, micros, merchant):
    at = canonical.format_at(datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros))
    obj = canonical.tx_object(
        id="ltx_1",
        seq=seq,
        kind="redeem",
        at=at,
        accounts=["escrow:c", f"merchant:{merchant}"],
        amounts_fen=[-amount, amount],
        refs=refs,
    )
    assert canonical.canonical(obj) == rfc8785.dumps(obj)


@settings(max_examples=300, deadline=None)
@given(
    refs=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), ref_values, max_size=6),
    postings=st.lists(
        st.tuples(st.text(max_size=20), st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1).filter(bool)),
        min_size=1,
        max_size=5,
    ),
    seq=st.integers(min_value=1, max_value=2**53 - 1),
    tx_id=st.text(max_size=30),
    kind=st.text(max_size=10),
)
def test_canonical_from_a_postings_template_is_rfc8785(refs, postings, seq, tx_id, kind):
    # What the verifier builds per row: any account names (quotes, backslashes, '%', control characters), any sides.
    accounts, amounts = [account for account, _ in postings], [amount for _, amount in postings]
    at = "2025-03-01T02:00:00.000000+00:00"
    obj = canonical.tx_object(id=tx_id, seq=seq, kind=kind, at=at, accounts=accounts, amounts_fen=amounts, refs=refs)
    template = canonical.postings_template(accounts, [amount > 0 for amount in amounts])
    body = canonical.canonical_parts(
        id=tx_id, seq=seq, kind=kind, at=at, refs=refs, postings=template % tuple(abs(amount) for amount in amounts)
    )
    assert body == rfc8785.dumps(obj) == canonical.canonical(obj)


def test_at_has_one_spelling():
    cst = timezone(timedelta(hours=8))
    assert canonical.format_at(datetime(2025, 3, 1, 10, 0, tzinfo=cst)) == "2025-03-01T02:00:00.000000+00:00"
    with pytest.raises(ValueError):
        canonical.format_at(datetime(2025, 3, 1))


# -- RFC 6962: the transparency-dev/merkle reference vectors ---------------------------------------------------------

LEAVES = [
    bytes.fromhex(x)
    for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    bytes.fromhex(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
H = bytes.fromhex
INCLUSION = [  # (leaf index, tree size, path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [  # (first, second, path)
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
LEAF_HASHES = [merkle.hash_leaf(leaf) for leaf in LEAVES]


def test_roots_match_the_reference_vectors():
    assert merkle.root_of([]) == H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for size in range(1, 9):
        assert merkle.root_of(LEAF_HASHES[:size]) == ROOTS[size - 1]
        tree = merkle.CompactTree()
        for leaf in LEAF_HASHES[:size]:
            tree.append(leaf)
        assert tree.root() == ROOTS[size - 1]


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(index, size, path):
    expected = [H(x) for x in path]
    assert merkle.inclusion_proof(index, LEAF_HASHES[:size]) == expected
    merkle.verify_inclusion(index, size, LEAF_HASHES[index], expected, ROOTS[size - 1])


@pytest.mark.parametrize("first, second, path", CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(first, second, path):
    expected = [H(x) for x in path]
    assert merkle.consistency_proof(first, LEAF_HASHES[:second]) == expected
    merkle.verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], expected)


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 8]) + value[1:]


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_forged_inclusion_proofs_are_rejected(index, size, path):
    proof, root, leaf = [H(x) for x in path], ROOTS[size - 1], LEAF_HASHES[index]
    forged = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, merkle.hash_leaf(b"WrongLeaf"), proof, root),
        (index, size, leaf, proof, merkle.EMPTY_ROOT),
        (index, size, leaf, proof + [root], root),
        (index, size, leaf, [root] + proof, root),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, proof + [b""], root),
    ] + [(index, size, leaf, proof[:i] + [_flip(proof[i])] + proof[i + 1 :], root) for i in range(len(proof))]
    for args in forged:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)


@pytest.mark.parametrize("first, second, path", CONSISTENCY)
def test_forged_consistency_proofs_are_rejected(first, second, path):
    proof, r1, r2 = [H(x) for x in path], ROOTS[first - 1], ROOTS[second - 1]
    forged = [
        (first - 1, second, r1, r2, proof),
        (first + 1, second, r1, r2, proof),
        (first, second * 2, r1, r2, proof),
        (first, second, r2, r1, proof),
        (first, second, r1, r2, []),
        (first, second, r1, r2, proof + [r1]),
        (first, second, r1, r2, [r2] + proof),
        (first, second, r1, r2, proof[:-1]),
        (second, first, r2, r1, proof),
    ] + [(first, second, r1, r2, proof[:i] + [_flip(proof[i])] + proof[i + 1 :]) for i in range(len(proof))]
    for args in forged:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), data=st.data())
def test_proofs_from_stored_subtrees_equal_the_definition(size, data):
    leaves = [merkle.hash_leaf(i.to_bytes(4, "big")) for i in range(size)]
    tree, completed = merkle.CompactTree(), []
    for leaf in leaves:
        tree.append(leaf, completed)
    nodes = {(0, i): leaf for i, leaf in enumerate(leaves)} | {(level, idx): h for level, idx, h in completed}
    assert merkle.root_from_nodes(size, nodes.__getitem__) == merkle.root_of(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert merkle.resolve(merkle.inclusion_ranges(index, size), nodes) == merkle.inclusion_proof(index, leaves)
    first = data.draw(st.integers(min_value=1, max_value=size))
    if first < size:
        path = merkle.resolve(merkle.consistency_ranges(first, size), nodes)
        assert path == merkle.consistency_proof(first, leaves)
        merkle.verify_consistency(first, size, merkle.root_of(leaves[:first]), merkle.root_of(leaves), path)


# -- checkpoints ----------------------------------------------------------------------------------------------------


def test_checkpoint_signs_the_c2sp_body_and_verifies(signing_key, public_key, tmp_path):
    cp = checkpoints.sign(signing_key, "example.org/log", 8, ROOTS[7], AT).document()
    assert cp["body"] == f"example.org/log\n8\n{base64.b64encode(ROOTS[7]).decode()}\n"
    assert checkpoints.verify_document(cp, public_key) == (8, ROOTS[7])
    # The key is kept: loading again gives the same one, and its public half is published beside it.
    again = checkpoints.load_signing_key(tmp_path / "ledger-signing.key")
    assert checkpoints.raw_public_key(again) == public_key
    assert checkpoints.parse_public_key(str(tmp_path / "ledger-signing.key.pub")) == public_key


def test_tampered_or_replayed_checkpoints_are_rejected(signing_key, public_key):
    cp = checkpoints.sign(signing_key, "example.org/log", 8, ROOTS[7], AT).document()
    other_key = checkpoints.raw_public_key(checkpoints.Ed25519PrivateKey.generate())
    bad = [
        cp | {"tree_size": 9},
        cp | {"root_hash": ROOTS[6].hex()},
        cp | {"body": cp["body"].replace("\n8\n", "\n9\n")},
        cp | {"signature": base64.b64encode(b"\x00" * 64).decode()},
    ]
    for document in bad:
        with pytest.raises(checkpoints.CheckpointError):
            checkpoints.verify_document(document, public_key)
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.verify_document(cp, other_key)
    with pytest.raises(checkpoints.CheckpointError, match="replayed"):
        checkpoints.verify_document(cp, public_key, not_older_than=9)


def test_postgresql_json_times_get_six_fractional_digits():
    from voucher_engine.ledger.verify_rows import json_at

    assert json_at("2025-03-01T02:00:00.123456+00:00") == "2025-03-01T02:00:00.123456+00:00"
    assert json_at("2025-03-01T02:00:00.1+00:00") == "2025-03-01T02:00:00.100000+00:00"
    assert json_at("2025-03-01T02:00:00+00:00") == "2025-03-01T02:00:00.000000+00:00"
    assert json_at("0044-03-15T00:00:00+00:00 BC") == "0044-03-15T00:00:00+00:00 BC"  # hashes to something else


def test_only_the_first_discrepancies_are_kept_whatever_order_they_are_found_in():
    from voucher_engine.ledger.verify_rows import MAX_DISCREPANCIES, Discrepancy, keep_first

    kept: list[Discrepancy] = []
    for seq in [*range(1000, 1000 + MAX_DISCREPANCIES + 50), 8, None, 3]:
        keep_first(kept, Discrepancy(seq, "hash", "x"))
    assert len(kept) == MAX_DISCREPANCIES
    assert min(d.seq for d in kept if d.seq is not None) == 3 and all(d.seq is not None for d in kept)
