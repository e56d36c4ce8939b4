"""The micro-batcher that claims and redemption share (db/batcher.py), without a database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from voucher_engine.db.batcher import GATHER_ENOUGH, MicroBatcher
from voucher_engine.errors import EngineError


@dataclass
class _Job:
    value: int
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def test_a_failed_batch_runs_again_one_by_one_and_only_the_bad_job_fails():
    sizes: list[int] = []

    async def run_batch(jobs: list[_Job]) -> None:
        sizes.append(len(jobs))
        if any(job.value < 0 for job in jobs):
            raise ValueError("a bad job in the batch")
        for job in jobs:
            job.future.set_result(job.value * 2)

    batcher = MicroBatcher(run_batch, name="test", classify=lambda exc: EngineError("VALIDATION_ERROR", str(exc)))
    jobs = [_Job(-1 if n % 4 == 3 else n) for n in range(12)]
    for job in jobs:
        batcher.submit(job)  # queued before the loop starts: they leave as one batch
    batcher.start()
    results = await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)
    await batcher.stop()
    assert sizes[0] == 12 and sizes[1:] == [1] * 12
    for job, result in zip(jobs, results, strict=True):
        if job.value < 0:
            assert isinstance(result, EngineError) and result.code == "VALIDATION_ERROR"
        else:
            assert result == job.value * 2


async def test_a_full_queue_is_refused_at_once_with_rate_limited_and_a_retry_after():
    async def run_batch(jobs: list[_Job]) -> None:
        for job in jobs:
            job.future.set_result(None)

    batcher = MicroBatcher(run_batch, name="test", max_queue=2)
    batcher.submit(_Job(1))
    batcher.submit(_Job(2))
    with pytest.raises(EngineError) as refused:
        batcher.submit(_Job(3))
    assert refused.value.code == "RATE_LIMITED" and refused.value.extra["retry_after_s"] == 1
    await batcher.stop()  # never started: what is queued is refused, not left waiting


async def test_jobs_handed_back_run_in_a_later_batch():
    seen: list[list[int]] = []

    async def run_batch(jobs: list[_Job]) -> list[_Job]:
        seen.append([job.value for job in jobs])
        again = [job for job in jobs if job.value == 1 and len(seen) == 1]
        for job in jobs:
            if job not in again:
                job.future.set_result(job.value)
        return again

    batcher = MicroBatcher(run_batch, name="test", max_inflight=4)
    jobs = [_Job(n) for n in range(3)]
    for job in jobs:
        batcher.submit(job)
    batcher.start()
    assert await asyncio.gather(*(job.future for job in jobs)) == [0, 1, 2]
    await batcher.stop()
    assert seen == [[0, 1, 2], [1]]


async def _batch_sizes(gather_s: float, gap_s: float, count: int, batch_s: float = 0.0) -> tuple[list[int], int]:
    """Jobs submitted every `gap_s` to a batcher whose batches take `batch_s`: the sizes of its batches, and how many
    waited for the gather window."""
    sizes: list[int] = []

    async def run_batch(jobs: list[_Job]) -> None:
        sizes.append(len(jobs))
        if batch_s:
            await asyncio.sleep(batch_s)
        for job in jobs:
            job.future.set_result(job.value)

    batcher = MicroBatcher(run_batch, name="test", gather_s=gather_s)
    batcher.start()
    jobs = []
    for n in range(count):
        jobs.append(_Job(n))
        batcher.submit(jobs[-1])
        await asyncio.sleep(gap_s)
    assert await asyncio.gather(*(job.future for job in jobs)) == list(range(count))
    await batcher.stop()
    return sizes, batcher.gathered


async def test_jobs_arriving_closer_than_the_gather_window_leave_together():
    alone, _ = await _batch_sizes(0.0, 0.001, 120)
    gathered_sizes, gathered = await _batch_sizes(0.015, 0.001, 120)
    assert max(alone) <= 2  # no window: each job leaves as it comes (the batch itself takes no time)
    assert gathered > 0 and max(gathered_sizes) >= 5
    assert len(gathered_sizes) < len(alone) / 2


async def test_jobs_that_waited_through_the_batch_before_them_leave_at_once():
    # Batches of 12 ms, a job every 2 ms: about six queue while a batch runs (short of GATHER_ENOUGH), and the
    # oldest of them has waited longer than the 8 ms window by the time that batch ends, so the next batch leaves at
    # once. The window used to be added after every such batch, lengthening every batch's cycle by the window.
    sizes, gathered = await _batch_sizes(0.008, 0.002, 60, batch_s=0.012)
    assert len(sizes) >= 6 and max(sizes) < GATHER_ENOUGH
    assert gathered <= 1  # the first job, which came to an idle batcher, may wait for company


async def test_a_lone_till_never_waits_for_company():
    sizes, gathered = await _batch_sizes(0.01, 0.03, 10)  # arrivals farther apart than the window
    assert gathered == 0 and sizes == [1] * 10


def test_a_gather_window_beyond_its_limit_is_refused():
    async def run_batch(jobs: list[_Job]) -> None:
        return None

    with pytest.raises(ValueError):
        MicroBatcher(run_batch, name="test", gather_s=1.0)
