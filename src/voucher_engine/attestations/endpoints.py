"""HTTP endpoints of attestations: `/v1/attesters` (admin registers and retires keys; admin and auditors read) and
`POST /v1/attestations/verify` (audit: check a token against its attester's key, retired or not)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from voucher_engine.attestations import repository, service
from voucher_engine.attestations.schemas import Attester as AttesterModel
from voucher_engine.attestations.schemas import AttesterCreate, AuditAnswer, AuditRequest
from voucher_engine.auth.dependencies import Admin, require
from voucher_engine.auth.subjects import Subject
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import State

router = APIRouter(tags=["attestations"])

Reader = Annotated[Subject, Depends(require("admin", "auditor"))]
AttesterId = Annotated[str, Path(max_length=64)]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "UNAUTHENTICATED: no valid bearer token"},
    403: {"description": "FORBIDDEN: the token's role may not do this"},
}


@router.post(
    "/v1/attesters",
    status_code=201,
    response_model=AttesterModel,
    responses={
        **_AUTH,
        409: {"description": "CONFLICT: this key is already registered"},
        422: {"description": "VALIDATION_ERROR: not a base64 Ed25519 public key"},
    },
    **operation(
        "Register an attester's public key",
        "Admin. Registers one Ed25519 public key of a public-data operator (base64 of the raw 32 bytes) "
        'under a name that contracts use in `holder attested by "<name>"`. The answer\'s `id` is what the '
        "operator's attestations carry as `iss`. Several keys may share a name: that is how keys rotate.",
        request_example={
            "name": "Shanghai public data operator",
            "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        },
        response_example={
            "id": "att_01",
            "name": "Shanghai public data operator",
            "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "created_at": "2025-01-01T09:00:00+08:00",
            "retired_at": None,
        },
        errors=["CONFLICT"],
    ),
)
async def create_attester(body: AttesterCreate, state: State, _: Admin) -> AttesterModel:
    async with state.engine.begin() as conn:
        return await service.create(conn, body)


@router.get(
    "/v1/attesters",
    response_model=Page[AttesterModel],
    responses=_AUTH,
    **operation(
        "List attesters",
        "Admin and auditors. Every registered key, retired ones included, by id.",
        response_example={
            "items": [
                {
                    "id": "att_01",
                    "name": "Shanghai public data operator",
                    "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
                    "created_at": "2025-01-01T09:00:00+08:00",
                    "retired_at": None,
                }
            ],
            "next_cursor": None,
        },
    ),
)
async def list_attesters(state: State, _: Reader, limit: Limit = 100, cursor: Cursor = None) -> Page[AttesterModel]:
    async with state.engine.connect() as conn:
        rows = await repository.list_page(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [service.to_model(row) for row in rows[:limit]]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.delete(
    "/v1/attesters/{attester_id}",
    response_model=AttesterModel,
    responses={**_AUTH, 404: {"description": "NOT_FOUND: no such attester"}},
    **operation(
        "Retire an attester's key",
        "Admin. From now on attestations signed with this key are refused (`ATTESTATION_INVALID`, "
        "check `attester_retired`); earlier ones stay verifiable for audit. The key is kept, never deleted; retiring "
        "twice keeps the first time.",
        response_example={
            "id": "att_01",
            "name": "Shanghai public data operator",
            "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "created_at": "2025-01-01T09:00:00+08:00",
            "retired_at": "2025-06-01T00:00:00+08:00",
        },
    ),
)
async def retire_attester(attester_id: AttesterId, state: State, _: Admin) -> AttesterModel:
    async with state.engine.begin() as conn:
        return await service.retire(conn, attester_id)


@router.post(
    "/v1/attestations/verify",
    response_model=AuditAnswer,
    responses={**_AUTH, 422: {"description": "ATTESTATION_INVALID: not a compact JWS of the attestation form"}},
    **operation(
        "Check an attestation for audit",
        "Admin and auditors. Checks the token's signature against its attester's key, retired or not, "
        "says whether a retired key signed it before its retirement, and shows what the engine recorded when it "
        "spent it (decision, issuance, time), for campaigns the caller may see. Spends nothing.",
        request_example={"attestation": "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOi…", "campaign_id": "cmp_7f3a9c2e1b4d5a60"},
        response_example={"valid": True, "attester_id": "att_01", "sub": "0000000000000001", "problems": []},
    ),
)
async def audit_attestation(body: AuditRequest, state: State, subject: Reader) -> AuditAnswer:
    async with state.engine.connect() as conn:
        return await service.audit(conn, subject, body.attestation)
