"""HTTP endpoints of attestations: `/v1/attesters` (admin registers and retires keys; admin and auditors read) and
`POST /v1/attestations/verify` (audit: check a token against its attester's key, retired or not)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from voucher_engine.attestations import repository, service
from voucher_engine.attestations.schemas import Attester as AttesterModel
from voucher_engine.attestations.schemas import AttesterCreate, AuditAnswer, AuditRequest
from voucher_engine.auth.dependencies import Admin, require
from voucher_engine.auth.subjects import Subject
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(tags=["attestations"])

Reader = Annotated[Subject, Depends(require("admin", "auditor"))]
AttesterId = Annotated[str, Path(max_length=64)]
_AUTH = {
    401: {"description": "UNAUTHENTICATED: no valid bearer token"},
    403: {"description": "FORBIDDEN: the token's role may not do this"},
}


@router.post(
    "/v1/attesters",
    status_code=201,
    response_model=AttesterModel,
    summary="Register an attester's public key",
    description="Admin. Registers one Ed25519 public key of a public-data operator (base64 of the raw 32 bytes) "
    'under a name that contracts use in `holder attested by "<name>"`. The answer\'s `id` is what the '
    "operator's attestations carry as `iss`. Several keys may share a name: that is how keys rotate.",
    responses={
        **_AUTH,
        409: {"description": "CONFLICT: this key is already registered"},
        422: {"description": "VALIDATION_ERROR: not a base64 Ed25519 public key"},
    },
)
async def create_attester(body: AttesterCreate, state: State, _: Admin) -> AttesterModel:
    async with state.engine.begin() as conn:
        return await service.create(conn, body)


@router.get(
    "/v1/attesters",
    response_model=Page[AttesterModel],
    summary="List attesters",
    description="Admin and auditors. Every registered key, retired ones included, by id.",
    responses=_AUTH,
)
async def list_attesters(state: State, _: Reader, limit: Limit = 100, cursor: Cursor = None) -> Page[AttesterModel]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.delete(
    "/v1/attesters/{attester_id}",
    response_model=AttesterModel,
    summary="Retire an attester's key",
    description="Admin. From now on attestations signed with this key are refused (`ATTESTATION_INVALID`, "
    "check `attester_retired`); earlier ones stay verifiable for audit. The key is kept, never deleted; retiring "
    "twice keeps the first time.",
    responses={**_AUTH, 404: {"description": "NOT_FOUND: no such attester"}},
)
async def retire_attester(attester_id: AttesterId, state: State, _: Admin) -> AttesterModel:
    async with state.engine.begin() as conn:
        return await service.retire(conn, attester_id)


@router.post(
    "/v1/attestations/verify",
    response_model=AuditAnswer,
    summary="Check an attestation for audit",
    description="Admin and auditors. Checks the token's signature against its attester's key, retired or not, "
    "says whether a retired key signed it before its retirement, and shows what the engine recorded when it "
    "spent it (decision, issuance, time), for campaigns the caller may see. Spends nothing.",
    responses={**_AUTH, 422: {"description": "ATTESTATION_INVALID: not a compact JWS of the attestation form"}},
)
async def audit_attestation(body: AuditRequest, state: State, subject: Reader) -> AuditAnswer:
    async with state.engine.connect() as conn:
        return await service.audit(conn, subject, body.attestation)
