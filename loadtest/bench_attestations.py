"""Attestation verification: CPU per token, against the 100 us budget of issue 18.

    python loadtest/bench_attestations.py [--tokens 20000] [--repeats 5]

Signs N distinct attestations (`"eligible": true`, a fresh jti each) with one Ed25519 key, then measures process
CPU time per token (best and median of R passes over all of them) for:

- `checks.verify`: everything the engine checks but the jti's single use (parse, header, claims, attester,
  signature, times, audience, wallet, id_hash, the token's SHA-256);
- `Gate.decide_attested`: the above plus the jti's single use and the decision, as issuance calls it;
- for comparison: PyJWT's `PyJWS.decode_complete` and `jwt.decode` with the same key (what using the library on the
  hot path would cost), and Ed25519 verification alone, by ed25519-zebra (what `jws.py` uses: the floor), by
  libsodium (PyNaCl, its fallback) and by OpenSSL (`cryptography`, what PyJWT uses).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from nacl.bindings import crypto_sign_open  # noqa: E402

from voucher_engine.attestations import checks, jws  # noqa: E402

CAMPAIGN = "cmp_0123456789abcdef"
BUDGET_US = 100.0


def _cpu_per_item_us(run, items: list, repeats: int) -> tuple[float, float]:
    passes = []
    for _ in range(repeats):
        started = time.process_time()
        run(items)
        passes.append((time.process_time() - started) / len(items) * 1e6)
    return round(min(passes), 1), round(statistics.median(passes), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    attester = checks.Attester("att_bench", "Bench", public.public_bytes_raw(), datetime.now(timezone.utc), None)
    registry = {attester.id: attester}
    now = int(time.time())
    holders = []
    for n in range(args.tokens):
        wallet = f"{n:016d}"
        claims = {"iss": attester.id, "sub": wallet, "aud": CAMPAIGN, "iat": now, "exp": now + 3600}
        token = jws.sign({**claims, "jti": f"j{n}", "id_hash": f"h{n}", "eligible": True}, key)
        holders.append((wallet, f"h{n}", token))

    def verify_all(items):
        for wallet, id_hash, token in items:
            checks.verify(
                token, registry, campaign_id=CAMPAIGN, wallet_id=wallet, id_hash=id_hash, attester_name=None, now_s=now
            )

    def gate_all(items):
        gate = checks.Gate(
            campaign_id=CAMPAIGN, check_holder=lambda a: [], attester_name="Bench", attesters=registry, now_s=now
        )
        for wallet, id_hash, token in items:
            assert gate.decide_attested(wallet, id_hash, token).code is None

    pyjws = jwt.PyJWS(algorithms=["EdDSA"])

    def pyjws_all(items):
        for _, _, token in items:
            pyjws.decode_complete(token, public, algorithms=["EdDSA"])

    def pyjwt_all(items):
        for _, _, token in items:
            jwt.decode(token, public, algorithms=["EdDSA"], audience=CAMPAIGN)

    signed = [(jws.parse(token).signature, jws.parse(token).signing_input) for _, _, token in holders]

    def ed25519_all(items):
        for signature, message in items:
            public.verify(signature, message)

    raw_public = public.public_bytes_raw()

    def libsodium_all(items):
        for signature, message in items:
            crypto_sign_open(signature + message, raw_public)

    def zebra_all(items):
        if jws.zebra_verify is None:
            return
        for signature, message in items:
            assert jws.zebra_verify(signature, message, raw_public)

    report = {
        "benchmark": "attestation verification, CPU per token (best, median of passes)",
        "tokens": args.tokens,
        "repeats": args.repeats,
        "checks.verify_us": _cpu_per_item_us(verify_all, holders, args.repeats),
        "gate.decide_attested_us": _cpu_per_item_us(gate_all, holders, args.repeats),
        "pyjwt.PyJWS.decode_complete_us": _cpu_per_item_us(pyjws_all, holders, args.repeats),
        "pyjwt.decode_us": _cpu_per_item_us(pyjwt_all, holders, args.repeats),
        "ed25519_zebra_alone_us": _cpu_per_item_us(zebra_all, signed, args.repeats) if jws.zebra_verify else None,
        "ed25519_libsodium_alone_us": _cpu_per_item_us(libsodium_all, signed, args.repeats),
        "ed25519_openssl_alone_us": _cpu_per_item_us(ed25519_all, signed, args.repeats),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target": f"<= {BUDGET_US:.0f} us per attestation",
    }
    report["within_target"] = report["gate.decide_attested_us"][1] <= BUDGET_US
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
