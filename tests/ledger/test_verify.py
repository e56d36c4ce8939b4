"""`verify` finds tampering done behind the engine's back (as superuser, guards dropped) at the right seq."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from typer.testing import CliRunner

from voucher_engine.ledger import export, verify
from voucher_engine.ledger import service as ledger

from .conftest import seed, superuser

N = 22 + 2 + 2  # seed(redemptions=22): 2 funds, 22 redemptions, a refund and a return


async def _tamper(database_url: str, *statements: str) -> None:
    conn = await superuser(database_url)
    try:
        # Superuser, every guard off: triggers (the append-only ones) and foreign keys.
        await conn.execute("SET session_replication_role = replica")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _books(engine, signing_key) -> None:
    await seed(engine, redemptions=22)
    await ledger.checkpoint_now(engine, signing_key, size=10)
    await ledger.checkpoint_now(engine, signing_key)


async def test_untouched_books_verify(engine, signing_key, public_key):
    await _books(engine, signing_key)
    report = await verify.verify_database(engine, public_key)
    assert report.ok, report.document()
    assert report.transactions == N and report.checkpoints_verified == 2 and report.accounts_checked == 7


TAMPERING = [
    # (what, statements, first seq reported)
    (
        "an amount changed",
        [
            "UPDATE ledger_transactions SET amounts_fen = ARRAY[-999, 999] "
            "WHERE id = (SELECT tx_id FROM ledger_sequence WHERE seq = 7)"
        ],
        7,
    ),
    (
        "a ref changed",
        [
            'UPDATE ledger_transactions SET refs = refs || \'{"voucher_id": "vch_other"}\' '
            "WHERE id = (SELECT tx_id FROM ledger_sequence WHERE seq = 12)"
        ],
        12,
    ),
    (
        "a transaction row deleted",
        ["DELETE FROM ledger_transactions WHERE id = (SELECT tx_id FROM ledger_sequence WHERE seq = 9)"],
        9,
    ),
    ("a sequence row deleted", ["DELETE FROM ledger_sequence WHERE seq = 5"], 5),
    (
        "two rows reordered",
        [
            "UPDATE ledger_sequence SET seq = 1004 WHERE seq = 4",
            "UPDATE ledger_sequence SET seq = 4 WHERE seq = 8",
            "UPDATE ledger_sequence SET seq = 8 WHERE seq = 1004",
        ],
        4,
    ),
    (
        "a row inserted in the middle",
        [
            "UPDATE ledger_sequence SET seq = seq + 1000 WHERE seq >= 6",
            "UPDATE ledger_sequence SET seq = seq - 999 WHERE seq >= 1006",
            "INSERT INTO ledger_transactions SELECT 'ltx_forged', campaign_id, kind, at, refs, accounts, amounts_fen "
            "FROM ledger_transactions WHERE id = (SELECT tx_id FROM ledger_sequence WHERE seq = 3)",
            "INSERT INTO ledger_sequence SELECT 6, 'ltx_forged', campaign_id, merchant_id, voucher_id, hash, "
            "prev_hash, leaf_hash FROM ledger_sequence WHERE seq = 3",
        ],
        6,
    ),
    (
        "the last rows deleted (the checkpoint covers them)",
        [f"DELETE FROM ledger_sequence WHERE seq >= {N - 1}"],
        N - 1,
    ),
    ("a hash rewritten", ["UPDATE ledger_sequence SET hash = sha256(hash) WHERE seq = 15"], 15),
    ("a tree node rewritten", ["UPDATE ledger_tree SET hash = sha256(hash) WHERE level = 2 AND idx = 1"], 8),
]


@pytest.mark.parametrize("what, statements, seq", TAMPERING, ids=[t[0] for t in TAMPERING])
async def test_tampering_is_found_at_the_right_seq(
    engine, database_url, signing_key, public_key, what, statements, seq
):
    await _books(engine, signing_key)
    await _tamper(database_url, *statements)
    report = await verify.verify_database(engine, public_key, sequence_first=False)
    assert not report.ok
    assert report.first.seq == seq, report.document()


async def test_balance_and_orphan_tampering_is_found(engine, database_url, signing_key, public_key):
    await _books(engine, signing_key)
    await _tamper(
        database_url,
        "UPDATE ledger_accounts SET balance_fen = balance_fen + 1 WHERE account = 'merchant:m2'",
        "INSERT INTO ledger_transactions VALUES ('ltx_orphan', 'cmp_0', 'redeem', now(), "
        "'{\"campaign_id\": \"cmp_0\"}', '{escrow:cmp_0,merchant:m1}', '{-5,5}')",
    )
    report = await verify.verify_database(engine, public_key, sequence_first=False)
    checks = {(d.check, d.seq) for d in report.discrepancies}
    assert ("balance", None) in checks and ("orphan", None) in checks, report.document()
    assert any("merchant:m2" in d.detail for d in report.discrepancies)


async def test_a_checkpoint_signed_by_another_key_is_rejected(engine, signing_key):
    from voucher_engine.ledger import checkpoints

    await _books(engine, signing_key)
    other = checkpoints.raw_public_key(checkpoints.Ed25519PrivateKey.generate())
    report = await verify.verify_database(engine, other)
    assert not report.ok and report.first.check == "checkpoint"


async def _export_csv(engine, **filters) -> str:
    return b"".join([chunk async for chunk in export.csv_chunks(engine, **filters)]).decode()


async def test_offline_verification_of_an_export(engine, signing_key, public_key):
    await _books(engine, signing_key)
    text = await _export_csv(engine)
    async with engine.connect() as conn:
        latest = (await ledger.get_checkpoint(conn)).document()
        old = (await ledger.get_checkpoint(conn, 10)).document()
    assert verify.verify_csv(io.StringIO(text), public_key, [latest]).ok
    # An old checkpoint replayed as if it were the newest: the rows after it are unproven.
    replay = verify.verify_csv(io.StringIO(text), public_key, [old])
    assert not replay.ok and replay.first.seq == 11
    replay = verify.verify_csv(io.StringIO(text), public_key, [old, latest], trusted_tree_size=N)
    assert not replay.ok and "replayed" in replay.first.detail
    # A row edited in the file.
    lines = text.splitlines()
    assert 'debit_fen"":' in lines[5]
    lines[5] = lines[5].replace('debit_fen"":', 'debit_fen"":1', 1)
    edited = verify.verify_csv(io.StringIO("\n".join(lines) + "\n"), public_key, [latest])
    assert not edited.ok and edited.first.seq == 5
    # A campaign's export checks row by row.
    partial = await _export_csv(engine, campaign_id="cmp_1")
    assert verify.verify_csv(io.StringIO(partial), public_key, [], partial=True).ok


async def test_the_cli_verifies_and_exits_1_with_the_seq(
    engine, database_url, signing_key, public_key, tmp_path, monkeypatch
):
    import base64

    from voucher_engine.cli import app

    await _books(engine, signing_key)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VE_DATA_DIR", str(tmp_path))
    key = base64.b64encode(public_key).decode()
    runner = CliRunner()

    async def invoke(args):  # the command runs its own event loop
        return await asyncio.to_thread(runner.invoke, app, args)

    result = await invoke(["ledger", "verify", "--public-key", key])
    assert result.exit_code == 0, result.output
    out = tmp_path / "ledger.csv"
    assert (await invoke(["ledger", "export", "--out", str(out)])).exit_code == 0
    async with engine.connect() as conn:
        (tmp_path / "cp.json").write_text(json.dumps((await ledger.get_checkpoint(conn)).document()))
    result = await invoke(
        ["ledger", "verify", "--csv", str(out), "--checkpoint", str(tmp_path / "cp.json"), "--public-key", key]
    )
    assert result.exit_code == 0, result.output
    await _tamper(database_url, "UPDATE ledger_sequence SET hash = sha256(hash) WHERE seq = 13")
    result = await invoke(["ledger", "verify", "--public-key", key])
    assert result.exit_code == 1 and "FAILED at seq 13" in result.output, result.output


# -- two processes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("what, statements, seq", TAMPERING, ids=[t[0] for t in TAMPERING])
async def test_rows_read_in_small_blocks_find_the_same_first_seq(
    engine, database_url, signing_key, public_key, monkeypatch, what, statements, seq
):
    # Rows arrive BLOCK_ROWS to a COPY line; blocks of 3 put every tampering next to a block's edge somewhere.
    from voucher_engine.ledger import verify_rows

    monkeypatch.setattr(verify_rows, "BLOCK_ROWS", 3)
    await _books(engine, signing_key)
    assert (await verify.verify_database(engine, public_key, workers=1)).ok
    await _tamper(database_url, *statements)
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=1)
    assert not report.ok
    assert report.first.seq == seq, report.document()


@pytest.mark.parametrize("what, statements, seq", TAMPERING, ids=[t[0] for t in TAMPERING])
async def test_two_processes_find_the_same_first_seq(
    engine, database_url, signing_key, public_key, what, statements, seq
):
    await _books(engine, signing_key)
    whole = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert whole.ok and whole.checkpoints_verified == 2, whole.document()
    assert whole.root_hash == (await verify.verify_database(engine, public_key, workers=1)).root_hash
    await _tamper(database_url, *statements)
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert not report.ok
    assert report.first.seq == seq, report.document()


async def test_two_processes_join_subtrees_checkpoints_and_escrows(engine, database_url, signing_key, public_key):
    # 304 transactions: the second part starts at seq 152 and hands over subtrees of 4 leaves (t = 2), so the
    # nodes above level 2 that straddle or follow the cut, and the checkpoints after it, are the join's to check.
    assert verify.plan_parts(304, 2) == (2, [0, 152, 304])
    await seed(engine, redemptions=300)
    for size in (100, 152, 153, 200, 256):
        await ledger.checkpoint_now(engine, signing_key, size=size)
    await ledger.checkpoint_now(engine, signing_key)
    one = await verify.verify_database(engine, public_key, sequence_first=False, workers=1)
    two = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert one.ok and two.ok, two.document()
    assert two.root_hash == one.root_hash and two.checkpoints_verified == one.checkpoints_verified == 6
    # A node the second process closes itself (level 1), and one only the join can (level 8: leaves 0..255).
    await _tamper(database_url, "UPDATE ledger_tree SET hash = sha256(hash) WHERE level = 8 AND idx = 0")
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert report.first.seq == 256 and report.first.check == "tree", report.document()
    await _tamper(database_url, "UPDATE ledger_tree SET hash = sha256(hash) WHERE level = 1 AND idx = 100")
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert report.first.seq == 202 and report.first.check == "tree", report.document()
    # An escrow that goes negative in the second part: that part is run again with its true start balances.
    await _tamper(
        database_url,
        "UPDATE ledger_transactions SET amounts_fen = ARRAY[-99999999, 99999999] "
        "WHERE id = (SELECT tx_id FROM ledger_sequence WHERE seq = 200)",
    )
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    checks = {(d.check, d.seq) for d in report.discrepancies}
    assert report.first.seq == 200 and ("escrow", 200) in checks, report.document()


async def test_a_failed_second_process_is_done_in_the_first(engine, signing_key, public_key, monkeypatch):
    await _books(engine, signing_key)

    async def broken(job):
        raise RuntimeError("no such interpreter")

    monkeypatch.setattr(verify, "_run_worker", broken)
    report = await verify.verify_database(engine, public_key, sequence_first=False, workers=2)
    assert report.ok and report.transactions == N and report.checkpoints_verified == 2, report.document()
    assert any("second process failed" in note for note in report.notes)


async def test_refs_with_quotes_backslashes_and_control_characters_verify(engine, signing_key, public_key):
    from datetime import datetime, timezone

    from .conftest import fund, open_accounts, redeem

    odd = redeem("c1", "m1", 5, 'v"1\\2\n\t\x01é')
    odd = type(odd)(
        kind=odd.kind,
        postings=odd.postings,
        at=datetime(2025, 3, 1, 2, tzinfo=timezone.utc),
        campaign_id="c1",
        refs=odd.refs | {"note": {"a.b": "\\\\", "x": 'say "hi"'}},
    )
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
        await ledger.post_many(conn, [fund("c1", {"iss_310000": 500}), odd, redeem("c1", "m1", 7, "v2")])
    checkpoint = await ledger.checkpoint_now(engine, signing_key)
    for workers in (1, 2):
        report = await verify.verify_database(engine, public_key, workers=workers)
        assert report.ok and report.transactions == 3, report.document()
    text = await _export_csv(engine)
    assert verify.verify_csv(io.StringIO(text), public_key, [checkpoint.document()]).ok


async def test_an_export_left_half_way_gives_its_connection_back(engine):
    from .conftest import fund, open_accounts, redeem

    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "escrow:c1", "merchant:m1")
        await ledger.post(conn, fund("c1", {"iss_310000": 10_000_000}))
    for start in range(0, 6000, 2000):
        async with engine.begin() as conn:
            await ledger.post_many(conn, [redeem("c1", "m1", 100, f"v{i}") for i in range(start, start + 2000)])
    await ledger.drain(engine)
    chunks = export.csv_chunks(engine)
    first = await chunks.__anext__()
    assert first.startswith(b"seq,id,kind,at,postings,refs,hash,prev_hash\n")
    await chunks.aclose()  # the reader hangs up: the COPY is cancelled and the connection goes back to the pool
    assert engine.pool.checkedout() == 0
    whole = await _export_csv(engine)
    assert whole.count("\n") == 6002 and verify.verify_csv(io.StringIO(whole), None, [], partial=True).ok


def test_a_row_that_cannot_be_read_is_reported_at_its_own_seq_within_its_block():
    # refs nested deeper than orjson reads (possible only behind the engine's back) in the middle of a COPY line of
    # several rows: the rows around it are still read, and the problem is named at the row's own seq.
    from voucher_engine.ledger import verify_rows

    verifier = verify_rows.RowVerifier(lo=0, start_balances={})
    parser = verify_rows.ChunkParser(verifier)

    def row(seq: int, refs: bytes = b'{"q": "],[\\\\\\""}') -> bytes:
        return (
            b'[%d, "%064x", "%064x", null, "ltx_%d", "redeem", "2025-03-01T02:00:00.000000+00:00", '
            b'["escrow:c", "merchant:m"], [-5, 5], ' % (seq, seq, seq - 1, seq) + refs + b"]"
        )

    deep = b'{"a": ' * 2000 + b"1" + b"}" * 2000
    line = b",".join([row(5), row(6, deep), row(7)])
    rows = parser.parse(line.replace(b"\\", b"\\\\") + b"\n")  # as COPY text writes it: backslashes doubled
    assert [r[0] for r in rows] == [5, 6, 7]
    assert rows[0][9] == {"q": '],[\\"'} and rows[2][4] == "ltx_7"
    assert [(p.seq, p.check) for p in verifier.problems] == [(6, "row")]
