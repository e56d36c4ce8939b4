"""Pure pieces: voucher codes, share splits, the lottery draw, the stock split, the holders CSV's rows."""

from __future__ import annotations

import csv
import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_engine.campaigns import cli, codes, ids, lottery
from voucher_engine.campaigns.service import stock_split
from voucher_engine.campaigns.shares import split_by_shares
from voucher_engine.errors import EngineError

SECRET = bytes(range(32))


def test_code_round_trip_is_compact_and_url_safe():
    campaign_id, voucher_id = ids.new_campaign_id(), ids.new_voucher_id()
    code = codes.make_code(SECRET, campaign_id, voucher_id, "0000000000000001")
    assert len(code) <= 80 and code.startswith("V1")
    assert all(c.isalnum() or c in "-_" for c in code)
    assert codes.parse_code(SECRET, code) == (campaign_id, voucher_id)
    assert codes.make_codes(SECRET, campaign_id, [voucher_id]) == [code]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # MAC flipped
        lambda c: c[:10] + ("A" if c[10] != "A" else "B") + c[11:],  # ids flipped
        lambda c: c[:-1],  # short
        lambda c: c + "A",  # long
        lambda c: "V2" + c[2:],  # unknown version
        lambda c: c[:20] + "!" + c[21:],  # not base64url
        lambda c: "",
        lambda c: None,
        lambda c: 12345,
    ],
)
def test_forged_or_malformed_codes_are_unknown(mangle):
    code = codes.make_code(SECRET, ids.new_campaign_id(), ids.new_voucher_id())
    with pytest.raises(EngineError) as caught:
        codes.parse_code(SECRET, mangle(code))
    assert caught.value.code == "VOUCHER_UNKNOWN"


def test_a_code_from_another_server_secret_is_unknown():
    code = codes.make_code(SECRET, ids.new_campaign_id(), ids.new_voucher_id())
    with pytest.raises(EngineError):
        codes.parse_code(bytes(32), code)


def test_parsing_a_code_takes_microseconds():
    code = codes.make_code(SECRET, ids.new_campaign_id(), ids.new_voucher_id())
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        codes.parse_code(SECRET, code)
    per_call_us = (time.perf_counter() - started) / rounds * 1e6
    assert per_call_us < 50, per_call_us


def test_voucher_id_blocks_are_ordered_and_distinct():
    block = ids.voucher_id_block(1000)
    assert block == sorted(block) and len(set(block)) == 1000
    assert all(len(v) == 36 for v in block)


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**13),
    shares=st.lists(st.integers(min_value=1, max_value=9999), min_size=1, max_size=16),
)
def test_splits_sum_exactly_and_round_down_except_the_first(amount, shares):
    total = sum(shares)
    # Scale arbitrary positive weights to basis points summing to 10000 (leftover to the first).
    bp = [s * 10000 // total for s in shares]
    bp[0] += 10000 - sum(bp)
    bp = [b for b in bp if b > 0] or [10000]
    parts = split_by_shares(amount, bp)
    assert sum(parts) == amount
    for part, share in zip(parts[1:], bp[1:]):
        assert part == amount * share // 10000
    assert parts[0] >= amount * bp[0] // 10000


def test_split_examples():
    assert split_by_shares(5_000_000_000, [9000, 1000]) == [4_500_000_000, 500_000_000]
    assert split_by_shares(101, [5000, 5000]) == [51, 50]
    assert split_by_shares(1, [3333, 3333, 3334]) == [1, 0, 0]


def test_stock_split_covers_the_quantity():
    for quantity in (1, 7, 64, 65, 500, 10_000, 1_000_003):
        split = stock_split(quantity)
        assert sum(split) == quantity and len(split) == min(64, quantity) and max(split) - min(split) <= 1


def test_the_draw_is_a_pure_function_of_sorted_applicants_and_seed():
    keys = sorted(lottery.applicant_key(f"{n:016d}", None) for n in range(1000))
    seed = bytes.fromhex("ab" * 32)
    first = lottery.draw(seed, keys, 100, 1, {})
    assert first == lottery.draw(seed, list(reversed(keys)), 100, 1, {})
    assert len(first) == 100 and len(set(first)) == 100
    assert first != lottery.draw(bytes.fromhex("cd" * 32), keys, 100, 1, {})


def test_the_draw_respects_holder_limits_across_wallets():
    keys = [lottery.applicant_key(f"{n:016d}", "same-person") for n in range(10)]
    keys += [lottery.applicant_key(f"{n:016d}", None) for n in range(10, 20)]
    winners = lottery.draw(b"s" * 16, keys, 20, 2, {"h:same-person": 1})
    assert sum(1 for key in winners if key.endswith(":same-person")) == 1
    assert len(winners) == 11


def test_a_claimed_voucher_is_answered_as_the_voucher_model_serialises_it():
    """claims.voucher_document builds the answer without the model; it must read the same, UTC included."""
    from datetime import datetime, timezone
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    import orjson

    from voucher_engine.campaigns.claims import voucher_document
    from voucher_engine.campaigns.codes import make_code
    from voucher_engine.campaigns.schemas import Voucher

    secret = b"k" * 32
    for tz in (ZoneInfo("Asia/Shanghai"), ZoneInfo("UTC")):
        terms = SimpleNamespace(
            tz=tz,
            campaign_id="cmp_00112233445566ff",
            face_value_fen=1000,
            public_terms={"kind": "fixed", "face_value_fen": 1000},
        )
        now = datetime(2025, 3, 1, 2, 3, 4, 5678, tzinfo=timezone.utc)
        item = SimpleNamespace(
            voucher_id="vch_" + "ab" * 16,
            wallet_id="0" * 16,
            now=now,
            valid_from=now,
            valid_until=datetime(2026, 1, 1, tzinfo=timezone.utc),
        )
        model = Voucher(
            id=item.voucher_id,
            code=make_code(secret, terms.campaign_id, item.voucher_id),
            campaign_id=terms.campaign_id,
            wallet_id=item.wallet_id,
            status="issued",
            valid_from=now.astimezone(tz),
            valid_until=item.valid_until.astimezone(tz),
            face_value_fen=1000,
            balance_fen=1000,
            issued_at=now.astimezone(tz),
            terms=terms.public_terms,
        )
        assert orjson.loads(voucher_document(secret, terms, item)) == model.model_dump(mode="json")


@pytest.mark.parametrize("block_chars", [1, 16, 1 << 20])
@pytest.mark.parametrize(
    "text",
    [
        "wallet_id,age\n0000000000000001,30\n\n0000000000000002,\n",
        "wallet_id,age\r\n0000000000000001,30\r\n\r\n0000000000000002,31",  # CRLF, no final line break
        "a,b\r1,2\r\r3,4\r",  # old Mac line breaks
        "a,b,c\n1,,\n,,\n ,x , \n",  # empty and blank cells, spaces kept
        'a,b\n1,2\n3,"x,y"\n4,"two\nlines"\n5,6\n',  # quoted cells later in the file
        'a,b\n"1","2"\n',
        "a,b\n1,2\n3,\x004\n",  # NUL: csv refuses it, and so must the fast path
    ],
)
def test_csv_rows_are_csv_readers_rows(monkeypatch, text, block_chars):
    """`voucher-engine issue` splits quote-free blocks itself (campaigns/cli.py, csv_rows): the same rows as
    csv.reader, wherever the blocks end."""
    monkeypatch.setattr(cli, "CSV_BLOCK_CHARS", block_chars)

    def rows(reader_of):
        try:
            return list(reader_of(io.StringIO(text, newline="")))
        except csv.Error as exc:
            return type(exc)

    assert rows(cli.csv_rows) == rows(csv.reader)
