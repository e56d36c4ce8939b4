"""`voucher-engine attester keygen | sign | sign-csv`: the reference attester on the command line.

    voucher-engine attester keygen --out attester.pem        # prints the public key to register
    voucher-engine attester sign --key attester.pem --attester-id att_... --contract c.contract \\
        --campaign cmp_... --wallet 6200000000000001 --attributes '{"age": 30, "residence_region": "310104"}'
    voucher-engine attester sign-csv --key ... --attester-id ... --contract ... --campaign ... in.csv out.csv

`sign` prints the compact JWS; a holder who fails the holder conditions gets none (exit 1, the failed conditions'
texts on standard error). `sign-csv` reads holders as `voucher-engine issue` does (wallet_id, optional id_hash,
attribute columns typed by the contract) and writes `wallet_id,id_hash,attestation` for the eligible ones: a file
`voucher-engine issue` takes as it is, carrying no attribute.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from voucher_engine.attestations import reference

app = typer.Typer(help="The reference attester: keys and signed attestations.", no_args_is_help=True)

KeyPath = Annotated[Path, typer.Option("--key", help="The attester's private key (PEM), from keygen.")]
AttesterId = Annotated[str, typer.Option("--attester-id", help="The id the engine gave the key (the token's iss).")]
ContractPath = Annotated[Path, typer.Option("--contract", help="The campaign's published contract text.")]
Campaign = Annotated[str, typer.Option("--campaign", help="The campaign's id (the token's aud).")]
Ttl = Annotated[int, typer.Option("--ttl", help="Seconds the attestation stays valid.")]
Carry = Annotated[
    bool, typer.Option("--carry-attributes", help="Sign the attributes instead of eligible: true (the engine decides).")
]
Now = Annotated[Optional[int], typer.Option("--now", help="Unix time to sign at (default: now).")]


@app.command()
def keygen(out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM, mode 600).")]) -> None:
    """Make an Ed25519 key; print its public key (base64) for POST /v1/attesters."""
    if out.exists():
        typer.echo(f"error: {out} exists; not overwriting a key", err=True)
        raise typer.Exit(2)
    pem, public = reference.keygen()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    sys.stdout.write(public + "\n")


def _attester(key: Path, attester_id: str, contract: Path, campaign: str, ttl: int) -> reference.Attester:
    return reference.Attester(
        contract.read_text(encoding="utf-8"),
        campaign_id=campaign,
        attester_id=attester_id,
        key=reference.load_private_key(key),
        ttl_s=ttl,
    )


@app.command()
def sign(
    key: KeyPath,
    attester_id: AttesterId,
    contract: ContractPath,
    campaign: Campaign,
    wallet: Annotated[str, typer.Option("--wallet", help="The holder's wallet (the token's sub).")],
    attributes: Annotated[str, typer.Option("--attributes", help="The holder's attributes, as a JSON object.")],
    id_hash: Annotated[Optional[str], typer.Option("--id-hash", help="Bind the holder's id_hash.")] = None,
    ttl: Ttl = reference.DEFAULT_TTL_S,
    carry_attributes: Carry = False,
    now: Now = None,
) -> None:
    """Evaluate one holder against the contract's holder conditions and print a signed attestation."""
    signer = _attester(key, attester_id, contract, campaign, ttl)
    try:
        token = signer.attest(
            wallet, json.loads(attributes), id_hash=id_hash, carry_attributes=carry_attributes, now_s=now
        )
    except reference.NotEligible as exc:
        typer.echo("not eligible: " + "; ".join(exc.rules), err=True)
        raise typer.Exit(1) from None
    sys.stdout.write(token + "\n")


@app.command("sign-csv")
def sign_csv(
    key: KeyPath,
    attester_id: AttesterId,
    contract: ContractPath,
    campaign: Campaign,
    source: Annotated[Path, typer.Argument(help="Holders: wallet_id, optional id_hash, attribute columns.")],
    out: Annotated[Path, typer.Argument(help="Where to write wallet_id,id_hash,attestation.")],
    ttl: Ttl = reference.DEFAULT_TTL_S,
    carry_attributes: Carry = False,
    now: Now = None,
) -> None:
    """Attest every eligible holder of a CSV; prints how many were attested and how many were not eligible."""
    signer = _attester(key, attester_id, contract, campaign, ttl)
    integers = reference.integer_attributes(signer.contract)
    attested = refused = 0
    with source.open(newline="", encoding="utf-8-sig") as inside, out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wallet_id", "id_hash", "attestation"])
        for row in csv.DictReader(inside):
            wallet_id, id_hash = row.pop("wallet_id"), row.pop("id_hash", None) or None
            attributes = {k: int(v) if k in integers else v for k, v in row.items() if v != ""}
            try:
                token = signer.attest(
                    wallet_id, attributes, id_hash=id_hash, carry_attributes=carry_attributes, now_s=now
                )
            except reference.NotEligible:
                refused += 1
                continue
            writer.writerow([wallet_id, id_hash or "", token])
            attested += 1
    typer.echo(json.dumps({"attested": attested, "not_eligible": refused}))
