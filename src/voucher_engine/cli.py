"""`voucher-engine`: serve | migrate | demo | token | contract | ledger | issue | bench."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from voucher_engine import bench
from voucher_engine.attestations import cli as attestations_cli
from voucher_engine.campaigns import cli as campaigns_cli
from voucher_engine.campaigns import remote as campaigns_remote
from voucher_engine.config import Settings, get_settings, settings_for
from voucher_engine.contracts import cli as contracts_cli
from voucher_engine.db.migrate import prepare_database
from voucher_engine.issuers import cli as issuers_cli
from voucher_engine.ledger import checkpoints
from voucher_engine.ledger import cli as ledger_cli
from voucher_engine.merchants import admin_cli as merchants_admin_cli
from voucher_engine.merchants import cli as merchants_cli
from voucher_engine.secrets_store import load_server_secret

app = typer.Typer(
    help="Targeted consumption subsidies paid as e-CNY smart-contract vouchers.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from voucher_engine import __version__

        typer.echo(f"voucher-engine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Targeted consumption subsidies paid as e-CNY smart-contract vouchers."""


token_app = typer.Typer(help="Bearer tokens for admin, gov and auditor.", no_args_is_help=True)
app.add_typer(token_app, name="token")

DataDir = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir", help="Where the embedded PostgreSQL and keys live (default: $VE_DATA_DIR, else ./ve-data)."
    ),
]


def prepare_keys(settings: Settings) -> None:
    """Create the server's key files once, before workers start, so that they never race to create them."""
    load_server_secret(settings.resolved_server_secret_path)
    checkpoints.load_signing_key(settings.resolved_signing_key_path)


def run_server(settings: Settings) -> None:
    import signal

    import uvicorn

    from voucher_engine.api import http  # noqa: F401  (checks, before anything starts, that uvicorn has what it needs)

    # uvicorn re-raises the signal that stopped it once it has shut down; with the default SIGTERM action that
    # would kill this process before its exit handlers stop the embedded PostgreSQL. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    _prepare_metrics(settings)
    ledger = _start_ledger_process(settings)
    webhooks = _start_webhooks_process(settings)
    risk = _start_risk_process(settings)
    # The variables set above for the child processes hold for this one too (with --workers 1 the app runs here).
    get_settings.cache_clear()
    try:
        uvicorn.run(
            "voucher_engine.api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            loop="uvloop",
            http="voucher_engine.api.http:OneWritePerResponse",
            timeout_graceful_shutdown=10,
            # Nothing here reads the client's address (rate limits go by key), so X-Forwarded-* buys nothing
            # and its middleware costs every request.
            proxy_headers=False,
        )
    finally:
        processes = [p for p in (webhooks, ledger, risk) if p is not None]
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)


def _prepare_metrics(settings: Settings) -> None:
    """prometheus-client's multi-process mode (observability/metrics.py): one empty directory for this run, named
    in the environment before any worker or background process starts. An operator's PROMETHEUS_MULTIPROC_DIR is
    used (and emptied) if set."""
    from voucher_engine.observability import multiproc

    multiproc.prepare_dir(Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.data_dir / "metrics"))


def _spawn(target, settings: Settings, name: str):
    """A background process of `serve`'s, started fresh (spawn: nothing of this process's state is inherited) and
    ended with it (daemon)."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=target, args=(settings,), name=name, daemon=True)
    process.start()
    return process


def _start_webhooks_process(settings: Settings):
    """The webhook dispatcher in a process of its own (webhooks/background.py says why); the workers keep a standby
    loop that takes over if it stops."""
    from voucher_engine.webhooks import background

    os.environ["VE_WEBHOOK_DISPATCHER"] = "process"
    own = settings.model_copy(update={"webhook_dispatcher": "process", "served": True})
    return _spawn(background.run_process, own, "voucher-engine webhooks")


def _start_risk_process(settings: Settings):
    """The risk window detector in a process of its own (risk/detector.run_process says why), unless risk control is
    off (VE_RISK=off); the workers, told so through the environment they inherit, run no detector loop."""
    from voucher_engine.risk import detector

    if settings.risk == "off":
        return None
    os.environ["VE_RISK_DETECTOR"] = "process"
    own = settings.model_copy(update={"risk_detector": "process"})
    return _spawn(detector.run_process, own, "voucher-engine risk detector")


def _start_ledger_process(settings: Settings):
    """The ledger's sequencer and checkpoints in a process of their own (ledger/background.py says why); the workers,
    told so through the environment they inherit, keep only a standby loop."""
    from voucher_engine.ledger import background

    os.environ["VE_LEDGER_SEQUENCER"] = "process"
    os.environ["VE_SERVED"] = "1"
    own = settings.model_copy(update={"ledger_sequencer": "process"})
    return _spawn(background.run_process, own, "voucher-engine ledger")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port.")] = None,
    data_dir: DataDir = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes.")] = None,
    test_clock: Annotated[
        bool, typer.Option("--test-clock", help="Allow PUT /v1/test/clock (never in production).")
    ] = False,
) -> None:
    """Run the HTTP service (with the embedded PostgreSQL unless DATABASE_URL is set)."""
    settings = settings_for(data_dir, host=host, port=port, workers=workers, test_clock=test_clock or None)
    prepare_database(settings)
    settings = get_settings()
    prepare_keys(settings)
    run_server(settings)


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Bring the database schema to the newest migration."""
    from voucher_engine.db import migrate as migrations

    prepare_database(settings_for(data_dir))
    typer.echo(f"schema at {migrations.head_revision()}", err=True)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin, gov or auditor.")],
    issuer_id: Annotated[Optional[str], typer.Option(help="The issuer a gov (or auditor) token is bound to.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Make a token and print it, alone, on standard output (it is shown only this once)."""
    from voucher_engine.auth import service
    from voucher_engine.db.engine import create_engine
    from voucher_engine.errors import EngineError

    url = prepare_database(settings_for(data_dir))

    async def make() -> str:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                token, _ = await service.create_token(conn, role, issuer_id)
                return token
        finally:
            await engine.dispose()

    try:
        token = asyncio.run(make())
    except EngineError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    sys.stdout.write(token + "\n")


def _run_on_database(data_dir: Path | None, work):
    """Run `work(conn)` in one transaction on the service's database; EngineError ends the command with code 2."""
    from voucher_engine.db.engine import create_engine
    from voucher_engine.errors import EngineError

    url = prepare_database(settings_for(data_dir))

    async def run():
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except EngineError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None


@token_app.command("list")
def token_list(
    issuer_id: Annotated[Optional[str], typer.Option(help="Only tokens bound to this issuer.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only tokens not revoked.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Print the tokens (never their secrets) as JSON lines: id, role, issuer_id, created_at, last_used_at,
    revoked_at."""
    from voucher_engine.auth import service

    async def work(conn):
        found, after = [], None
        while True:
            page = await service.list_tokens(conn, after=after, limit=1000, issuer_id=issuer_id, active_only=active)
            found += page
            if len(page) < 1000:
                return found
            after = page[-1].id

    for token in _run_on_database(data_dir, work):
        sys.stdout.write(token.model_dump_json() + "\n")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...), as `token list` shows it.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token: every worker refuses it from now on. Revoking it again changes nothing."""
    from voucher_engine.auth import service

    async def work(conn):
        return await service.revoke_token(conn, token_id)

    token = _run_on_database(data_dir, work)
    typer.echo(f"revoked {token.id} ({token.role}) at {token.revoked_at.isoformat()}", err=True)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo's PostgreSQL and keys live (its demo.env too).")
    ] = Path("./ve-demo-data"),
    test_clock: Annotated[
        bool,
        typer.Option(
            "--test-clock/--no-test-clock",
            help="Allow PUT /v1/test/clock, so you can move the demo's business time (on by default in the demo; "
            "never in production).",
        ),
    ] = True,
) -> None:
    """Serve with a demo issuer, two merchants and a funded, active campaign; print commands to try it."""
    from voucher_engine import demo as demo_module

    settings = settings_for(data_dir, host=host, port=port, test_clock=test_clock)
    prepare_database(settings)
    settings = get_settings()
    prepare_keys(settings)
    demo_module.seed_and_print(settings)
    run_server(settings)


# Each room's own sub-commands, listed here (the composition at the top knows the rooms, never the other way).
app.add_typer(contracts_cli.app, name="contract", help="Check and explain contracts.")
app.add_typer(ledger_cli.app, name="ledger", help="Verify the ledger offline or against the database.")
app.add_typer(campaigns_cli.app, name="issue", help="Issue vouchers from a CSV of holders.")
app.add_typer(bench.app, name="bench", help="Benchmarks that print figures.")
app.add_typer(merchants_cli.app, name="pos", help="A signing POS client: ping, quote, redeem, refund.")
app.add_typer(attestations_cli.app, name="attester", help="The reference attester: keygen, sign, sign-csv.")
# Against a running service, with a bearer token (demo.env's $VE, $GOV, $ADMIN):
app.add_typer(
    campaigns_remote.app, name="campaign", help="A campaign's life over the API: check, create, fund, close..."
)
app.add_typer(issuers_cli.app, name="issuer", help="Issuers over the API: create, show, list.")
app.add_typer(merchants_admin_cli.merchant_app, name="merchant", help="Merchants over the API: put, show, suspend...")
app.add_typer(merchants_admin_cli.key_app, name="key", help="POS keys over the API: create, revoke.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
