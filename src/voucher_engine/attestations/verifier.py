"""Attestations verified in worker processes, beside an issuance's own work.

An Ed25519 verification costs about 45 us of CPU, a hundred times what deciding a holder with raw attributes costs;
an issuance of 100,000 attested holders on one core would spend most of its time there while PostgreSQL waits. So
an issuance's chunks are verified by `WORKERS` child processes (`python -m voucher_engine.attestations.worker`),
each given its share of a chunk, while the issuance's own process settles the chunk before (single use, decision,
the COPY rows) and reads the next: verification of chunk N+1 overlaps the insert of chunk N.

What crosses to a worker: the holders' wallet, id_hash and token, the campaign's id, the contract's attester name,
the registry of attesters (ids, names, public keys, retirement) and the time; what comes back is `checks.Verified`
or the failed check's name per token, in order. The worker runs `checks.verify_all`, the very function the
issuance would run itself: the checks are the same wherever they run, and the jti's single use stays in the
issuance's process, in holder order (`Gate.settle`). A worker writes nothing else: no log, no error output (a
token's payload may carry a person's attributes).

Workers are started at the first slice of at least `MIN_TOKENS` attestations (about 0.2 s of verification; below
that, starting processes costs more than it saves); smaller issuances verify in their own process, and so do the
slices that come while the workers start (they do not wait for them). If a worker cannot be started, dies or answers nonsense, the pool is closed, a warning
logged (without any token's content), and that chunk and the rest are verified in the issuance's process: the
outcome is the same, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

from voucher_engine.attestations.checks import Gate, Verdict, verify_all
from voucher_engine.attestations.worker import FRAME as _FRAME

log = logging.getLogger("voucher_engine.attestations.verifier")

# Two cores here: two workers beside the issuance's process and PostgreSQL (the OS shares the cores between them).
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
MIN_TOKENS = 4_000
# Chunks are cut into slices of SLICE holders, and up to LOOKAHEAD slices are verified ahead of the one the
# issuance is settling: small enough that the first slice's wait is short, enough ahead that workers never idle.
SLICE = 4_000
# At most this many tokens per request to a worker (~850 KB: the worker's pipes hold a whole one).
PIECE = 2_000
LOOKAHEAD = 3
# Attestations verified in the issuance's process at a time while the workers start (0: wait for them): a step is
# one turn of the event loop for the starts (~6 ms here), which take a dozen turns; 500 a step verified ~6,000 here.
START_STEP = 100
_STREAM_LIMIT = 1 << 22
# Where `voucher_engine` is, installed or not (a worker imports it from there).
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def command() -> list[str]:
    """The worker's command line (the same interpreter; tests point it at failing stand-ins)."""
    return [sys.executable, "-m", "voucher_engine.attestations.worker"]


class WorkerFailed(Exception):
    """A worker died or answered something that is not a verdict per token."""


class _Worker:
    """One worker process. Requests are written as soon as they are made (the worker finds the next one waiting in
    its input when it finishes one: worker.py widens both pipes to hold a whole request or answer) and answers are
    read in the same order."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.last: asyncio.Future | None = None  # the read of the latest request's answer

    async def verify(self, request: bytes, count: int) -> list[Verdict]:
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            raise WorkerFailed("no pipes")
        previous, mine = self.last, asyncio.get_running_loop().create_future()
        self.last = mine
        try:
            stdin.write(_FRAME.pack(len(request)) + request)
            if previous is not None:  # answers come back in the order of the requests
                await asyncio.wait([previous])
            (size,) = _FRAME.unpack(await stdout.readexactly(_FRAME.size))
            answer = pickle.loads(await stdout.readexactly(size))
        except (OSError, asyncio.IncompleteReadError, pickle.UnpicklingError, EOFError, struct.error) as exc:
            self.kill()
            raise WorkerFailed(type(exc).__name__) from None
        except BaseException:  # cancelled half way: this worker's answers would no longer match its requests
            self.kill()
            raise
        finally:
            mine.set_result(None)
        if not isinstance(answer, list) or len(answer) != count:
            self.kill()
            raise WorkerFailed("a verdict per token expected")
        return answer

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class Verifier:
    """Verifies the attestations of one issuance's chunks (an async context manager: workers end with it).

    `chunks(source)` yields the source's chunks of (wallet_id, id_hash, evidence), in slices of at most `SLICE`
    holders, each with its verdicts (a list aligned with the slice: a `Verdict` where the evidence is a token, None
    elsewhere), verifying up to `LOOKAHEAD` slices ahead of the one the caller is working on."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.wanted = WORKERS if WORKERS > 1 else 0  # one core: nothing to overlap with
        self.min_tokens = MIN_TOKENS
        self.workers: list[_Worker] = []
        self.failed = False
        self.by_workers = 0
        self.inline = 0
        self.pending: deque[tuple[list[tuple], asyncio.Task]] = deque()
        self.starting: asyncio.Future | None = None
        self.starting_lock = asyncio.Lock()

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._cancel_pending()  # an issuance that failed half way: nothing more to verify
        await self.close(clean=exc_info[0] is None)
        if self.by_workers:
            log.info(
                "attestations verified: %d by %d worker processes, %d in the issuance's process",
                self.by_workers,
                self.wanted,
                self.inline,
            )

    async def chunks(
        self, source: AsyncIterable[list[tuple]], *, verify: bool = True
    ) -> AsyncIterator[tuple[list[tuple], Sequence[Verdict | None]]]:
        if not verify:  # holders decided already (lottery winners)
            async for chunk in source:
                yield chunk, [None] * len(chunk)
            return
        pending = self.pending
        try:
            async for whole in source:
                for start in range(0, len(whole), SLICE):
                    chunk = whole[start : start + SLICE]
                    pending.append((chunk, asyncio.ensure_future(self.verdicts(chunk))))
                    if len(pending) > LOOKAHEAD:
                        done, task = pending.popleft()
                        yield done, await task
            while pending:
                done, task = pending.popleft()
                yield done, await task
        finally:
            await self._cancel_pending()

    async def _cancel_pending(self) -> None:
        tasks = [task for _, task in self.pending]
        self.pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def verdicts(self, chunk: Sequence[tuple]) -> list[Verdict | None]:
        """The verdict of each holder of the chunk that carries a token (None for the others)."""
        at = [i for i, holder in enumerate(chunk) if type(holder[2]) is str]
        out: list[Verdict | None] = [None] * len(chunk)
        if not at:
            return out
        tokens = [chunk[i] for i in at]
        found: list[Verdict] = []
        if self.wanted and not self.failed and (self.workers or len(tokens) >= self.min_tokens):
            if self.starting is None:
                self.starting = asyncio.ensure_future(self._start())
            # While the workers start (a second or two under load), verify here, a step at a time so that
            # starting them goes on in between; then hand them the rest.
            async with self.starting_lock:  # one slice at a time, or the start would wait for all of them
                while START_STEP and not self.starting.done() and len(found) < len(tokens):
                    found += self._inline(tokens[len(found) : len(found) + START_STEP])
                    await asyncio.sleep(0)
            if len(found) < len(tokens):
                await asyncio.shield(self.starting)
            if len(found) < len(tokens) and self.workers and not self.failed:
                try:
                    found += await self._by_workers(tokens[len(found) :])
                except WorkerFailed as exc:
                    await self._broken(str(exc))
        if len(found) < len(tokens):
            found += self._inline(tokens[len(found) :])
        for i, verdict in zip(at, found):
            out[i] = verdict
        return out

    def _inline(self, tokens: list[tuple]) -> list[Verdict]:
        self.inline += len(tokens)
        return verify_all(tokens, self.gate.attesters, *self.gate.context)

    async def _by_workers(self, tokens: list[tuple]) -> list[Verdict]:
        workers = list(self.workers)
        if not workers:
            raise WorkerFailed("closed")
        # Each worker an equal share, in requests of at most PIECE tokens (a lottery's list may be a million):
        # request i goes to worker i mod n, which answers its requests in order.
        share = min(PIECE, -(-len(tokens) // len(workers)))
        context = (self.gate.attesters, *self.gate.context)
        pieces = [tokens[n : n + share] for n in range(0, len(tokens), share)]
        answers = await asyncio.gather(
            *(
                workers[i % len(workers)].verify(
                    pickle.dumps((piece, context), protocol=pickle.HIGHEST_PROTOCOL), len(piece)
                )
                for i, piece in enumerate(pieces)
            ),
            return_exceptions=True,
        )
        found: list[Verdict] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            found.extend(answer)
        self.by_workers += len(found)
        return found

    async def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")]))}
        # All at once: each start takes several turns of the event loop, and while they are under way the issuance
        # verifies here a step at a time (one turn each), leaving the other core idle.
        started = await asyncio.gather(
            *(
                asyncio.create_subprocess_exec(
                    *command(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=env,
                    limit=_STREAM_LIMIT,
                )
                for _ in range(self.wanted)
            ),
            return_exceptions=True,
        )
        self.workers = [_Worker(p) for p in started if isinstance(p, asyncio.subprocess.Process)]
        error = next((exc for exc in started if isinstance(exc, BaseException)), None)
        if error is None:
            return
        self.failed = True
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.kill()
            await worker.process.wait()
        if not isinstance(error, OSError):
            raise error
        log.warning(
            "attestation verifier processes failed (not started: %s); verifying in the issuance's process",
            type(error).__name__,
        )

    async def _broken(self, why: str) -> None:
        if not self.failed:
            log.warning("attestation verifier processes failed (%s); verifying in the issuance's process", why)
        self.failed = True
        await self.close(clean=False)

    async def close(self, *, clean: bool) -> None:
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
            await asyncio.gather(self.starting, return_exceptions=True)
        workers, self.workers = self.workers, []
        for worker in workers:
            if clean and worker.process.stdin is not None:
                worker.process.stdin.close()  # end of input: the worker returns
            else:
                worker.kill()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except asyncio.TimeoutError:
                worker.kill()
                await worker.process.wait()
