"""An attestation's checks, and the gate that decides one campaign's holders. Pure: no I/O.

Every refusal is `ATTESTATION_INVALID` with a `detail` from `CHECKS` (and the check's name as `check`): it says
which check failed and never repeats anything from the token, whose payload may carry a person's attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from voucher_engine.attestations import jws
from voucher_engine.errors import EngineError

# Clocks of the engine and of the attester may differ by this much (iat in the future, exp just passed).
CLOCK_SKEW_S = 60
MAX_JTI_CHARS = 128
MAX_ATTRIBUTES = 32

CHECKS: dict[str, str] = {
    "malformed": "The attestation is not a compact JWS (three base64url parts, at most 8192 characters).",
    "header": 'The attestation\'s header is not {"alg": "EdDSA", "typ": "ve-attestation+jwt"}.',
    "payload": "The attestation's payload lacks a claim or has one of the wrong type (iss, sub, aud, iat, exp, "
    'jti of 1 to 128 ASCII characters, optional id_hash, and either "eligible" or "attributes").',
    "attester_unknown": "The attestation's issuer (iss) is not a registered attester.",
    "attester_retired": "The attestation's attester key has been retired; new attestations by it are refused.",
    "attester_not_named": "The attestation's attester is not the one this campaign's contract names.",
    "signature": "The attestation's signature does not verify with its attester's key.",
    "expired": "The attestation has expired (exp).",
    "not_yet_valid": "The attestation is not valid yet (iat is in the future).",
    "audience": "The attestation is for another campaign (aud).",
    "subject": "The attestation is for another wallet (sub).",
    "id_hash": "The attestation's id_hash does not match the holder's.",
    "replayed": "The attestation (its jti) has already been used for this campaign.",
    "required": "This campaign's contract requires an attestation (holder attested by); a holder is given with "
    "an attestation instead of attributes.",
}


def invalid(check: str) -> EngineError:
    return EngineError("ATTESTATION_INVALID", CHECKS[check], check=check)


class Refused(Exception):
    """Internal: one check failed (its name in `check`)."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


@dataclass(frozen=True, slots=True)
class Attester:
    """A registered key. Plain data (the raw 32-byte public key), so that it crosses to verifier processes."""

    id: str
    name: str
    public_key: bytes
    created_at: datetime
    retired_at: datetime | None


# What the engine keeps of a good attestation and what it decides on: (jti, SHA-256 of the token, attester id,
# `eligible`, `attributes`). A plain tuple, not a NamedTuple: it is what verifier processes send back, 100,000 times
# for a list of 100,000 (attestations/verifier.py), and pickle writes a NamedTuple ~15x slower and reads it ~3x slower.
Verified = tuple[str, bytes, str, "bool | None", "dict[str, Any] | None"]

# What verifying one attestation gives: Verified, or the name of the check that failed.
Verdict = Verified | str


def verify(
    token: object,
    attesters: dict[str, Attester],
    *,
    campaign_id: str,
    wallet_id: str,
    id_hash: str | None,
    attester_name: str | None,
    now_s: int,
) -> Verified:
    """Every check but the jti's single use (which needs the campaign's spent set); raises Refused."""
    try:
        compact = jws.parse(token)
    except jws.Malformed as exc:
        raise Refused(exc.check) from None
    claims = compact.claims
    issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
    issued, expires, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
    eligible, attributes, token_id_hash = claims.get("eligible"), claims.get("attributes"), claims.get("id_hash")
    if (
        not isinstance(issuer, str)
        or not isinstance(subject, str)
        or not isinstance(audience, str)
        or type(issued) is not int
        or type(expires) is not int
        or not isinstance(jti, str)
        or not 0 < len(jti) <= MAX_JTI_CHARS
        or not jti.isascii()
        or (token_id_hash is not None and not isinstance(token_id_hash, str))
        or (eligible is None) == (attributes is None)
        or (eligible is not None and type(eligible) is not bool)
        or (attributes is not None and not _scalar_object(attributes))
    ):
        raise Refused("payload")
    attester = attesters.get(issuer)
    if attester is None:
        raise Refused("attester_unknown")
    if attester.retired_at is not None:
        raise Refused("attester_retired")
    if attester_name is not None and attester.name != attester_name:
        raise Refused("attester_not_named")
    if not jws.signature_ok(compact, attester.public_key):
        raise Refused("signature")
    if now_s >= expires + CLOCK_SKEW_S:
        raise Refused("expired")
    if issued > now_s + CLOCK_SKEW_S or expires < issued:
        raise Refused("not_yet_valid")
    if audience != campaign_id:
        raise Refused("audience")
    if subject != wallet_id:
        raise Refused("subject")
    if token_id_hash is not None and token_id_hash != id_hash:
        raise Refused("id_hash")
    digest = hashlib.sha256(str(token).encode("ascii")).digest()  # a str: parse checked it
    return (jti, digest, attester.id, eligible, attributes)


def verify_all(
    holders: Sequence[tuple[str, str | None, str]],
    attesters: dict[str, Attester],
    campaign_id: str,
    attester_name: str | None,
    now_s: int,
) -> list[Verdict]:
    """`verify` for each (wallet_id, id_hash, token): what verifier processes run on their share of a chunk, and
    what an issuance runs itself when it has no such process."""
    out: list[Verdict] = []
    append = out.append
    for wallet_id, id_hash, token in holders:
        try:
            append(
                verify(
                    token,
                    attesters,
                    campaign_id=campaign_id,
                    wallet_id=wallet_id,
                    id_hash=id_hash,
                    attester_name=attester_name,
                    now_s=now_s,
                )
            )
        except Refused as exc:
            append(exc.check)
    return out


def _scalar_object(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= MAX_ATTRIBUTES
        and all(isinstance(k, str) and not isinstance(v, (dict, list)) for k, v in value.items())
    )


class Use(NamedTuple):
    """One attestation spent: the row `attestation_uses` keeps. (A tuple: one per holder of a large list, where a
    frozen dataclass costs a microsecond to make.)"""

    jti: str
    sha256: bytes
    attester_id: str
    wallet_id: str
    decision: str  # eligible | not_eligible


@dataclass(slots=True)
class Decision:
    """A holder decided: `code` None (eligible), NOT_ELIGIBLE (with `failures`) or ATTESTATION_INVALID (`check`)."""

    code: str | None
    check: str | None = None
    failures: list = field(default_factory=list)
    use: Use | None = None


class Gate:
    """Decides one campaign's holders, given as raw attributes (a dict) or as an attestation (a compact JWS).

    `spent` holds the campaign's jtis already used (and those this gate accepts, as it accepts them), so a jti
    is refused the second time within one issuance as across issuances. Every attestation that passes its checks
    is recorded in `uses` with its decision, eligible or not: it is spent.
    """

    def __init__(
        self,
        *,
        campaign_id: str,
        check_holder: Callable[[dict[str, Any]], list],
        attester_name: str | None,
        attesters: dict[str, Attester],
        now_s: int,
        spent: set[str] | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        self.check_holder = check_holder
        self.attester_name = attester_name
        self.attesters = attesters
        self.now_s = now_s
        self.spent = spent if spent is not None else set()
        self.uses: list[Use] = []

    @property
    def mandatory(self) -> bool:
        return self.attester_name is not None

    def decide(
        self, wallet_id: str, id_hash: str | None, evidence: dict | str, verdict: Verdict | None = None
    ) -> Decision:
        """Decide a holder. `verdict` is the attestation already verified (by a verifier process, in the same
        order as the holders): only its single use and its decision are left to do here."""
        if type(evidence) is not str:
            if self.mandatory:
                return Decision("ATTESTATION_INVALID", "required")
            failures = self.check_holder(evidence)  # type: ignore[arg-type]
            return Decision("NOT_ELIGIBLE", failures=failures) if failures else Decision(None)
        if verdict is None:
            verdict = self.verify(wallet_id, id_hash, evidence)
        return self.settle(wallet_id, verdict)

    def verify(self, wallet_id: str, id_hash: str | None, token: str) -> Verdict:
        return verify_all([(wallet_id, id_hash, token)], self.attesters, *self.context)[0]

    @property
    def context(self) -> tuple[str, str | None, int]:
        """What `verify_all` needs besides the holders and the attesters: campaign, attester name, now."""
        return self.campaign_id, self.attester_name, self.now_s

    def decide_attested(self, wallet_id: str, id_hash: str | None, token: str, *, record: bool = True) -> Decision:
        return self.settle(wallet_id, self.verify(wallet_id, id_hash, token), record=record)

    def settle(self, wallet_id: str, verdict: Verdict, *, record: bool = True) -> Decision:
        """What is left once an attestation is verified: its jti's single use, and the decision."""
        if isinstance(verdict, str):
            return Decision("ATTESTATION_INVALID", verdict)
        jti, sha256, attester_id, eligible, attributes = verdict
        if jti in self.spent:
            return Decision("ATTESTATION_INVALID", "replayed")
        if attributes is not None:
            failures = self.check_holder(attributes)
        else:
            failures = [] if eligible else [_ATTESTER_SAID_NO]
        use = Use(jti, sha256, attester_id, wallet_id, "not_eligible" if failures else "eligible")
        if record:
            self.spent.add(jti)
            self.uses.append(use)
        return Decision("NOT_ELIGIBLE", failures=failures, use=use) if failures else Decision(None, use=use)


class _AttesterSaidNo:
    """An attestation with `"eligible": false`: the attester evaluated the conditions and they failed."""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "the attester's evaluation of the holder conditions", "expected": "eligible"}


_ATTESTER_SAID_NO = _AttesterSaidNo()


def holder_explain(failures: list) -> list[dict[str, Any]]:
    """A NOT_ELIGIBLE explain without the values seen: the rule, where it is and what it needs, never a holder's
    attribute (error details must not carry personal data)."""
    out = []
    for failure in failures:
        entry = failure.to_dict()
        entry.pop("actual", None)
        out.append(entry)
    return out
