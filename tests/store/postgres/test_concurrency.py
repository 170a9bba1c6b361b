"""PostgreSQL store: what several processes on several machines rely on — gseq in commit order under
concurrent writers, claims that never overlap, leases on the database clock, wake-ups across
connections that survive a lost connection."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import anyio
import pytest

from orchestrator.core.lifecycle import invariant_violations
from orchestrator.store.postgres import PostgresStore
from orchestrator.store.records import ChildFinish, ChildStart, ClaimedChild
from tests.store.conftest import new_run

TS = "2024-01-01T00:00:00.000Z"


async def _until(probe: Callable[[], bool], within_s: float = 10.0) -> None:
    with anyio.fail_after(within_s):
        while True:
            if probe():
                return
            await anyio.sleep(0.01)


async def _stores(url: str, n: int) -> list[PostgresStore]:
    out = []
    for _ in range(n):
        s = PostgresStore(url)
        await s.open()
        out.append(s)
    return out


async def test_a_tail_never_sees_a_gap_while_writers_commit_concurrently(store: PostgresStore, pg_url: str) -> None:
    """gseq follows the commit order: a reader of `gseq > last` always gets the next numbers, so a
    tail that moves its cursor to what it saw never skips an event committed later."""
    writers = await _stores(pg_url, 4)
    runs = [await new_run(store, 60, run_id=f"wfevalrun_w{i}") for i in range(len(writers))]
    seen: list[int] = []
    done = anyio.Event()

    async def write(s: PostgresStore, run_id: str) -> None:
        claimed = await s.children.claim(run_id, 60, owner="w", lease_s=60)
        for i in range(0, len(claimed), 3):
            batch = claimed[i : i + 3]
            starts = [ChildStart(c["id"], run_id, TS) for c in batch]
            finishes = [
                ChildFinish(child_id=c["id"], run_id=run_id, status="completed", verdict="passed") for c in batch
            ]
            await s.children.apply(starts, finishes, owner="w")

    async def tail() -> None:
        last = await store.events.last_gseq()
        seen.append(last)
        while True:
            events = await store.events.after(None, last, 1000)
            gseqs = [e["gseq"] for e in events]
            assert gseqs == list(range(last + 1, last + 1 + len(gseqs))), f"a gap after {last}: {gseqs[:10]}"
            if gseqs:
                last = gseqs[-1]
                seen.extend(gseqs)
            elif done.is_set():
                return
            await anyio.sleep(0.001)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail)
            async with anyio.create_task_group() as wtg:
                for s, r in zip(writers, runs, strict=True):
                    wtg.start_soon(write, s, r)
            done.set()
    finally:
        for s in writers:
            await s.close()
    assert seen[-1] == await store.events.last_gseq()
    for run_id in runs:
        run = await store.runs.get(run_id)
        assert run["status"] == "completed" and invariant_violations(run) == []
        seqs = [e["seq"] for e in await store.events.after(run_id, 0, 1000)]
        assert seqs == list(range(1, len(seqs) + 1))


async def test_claims_from_several_machines_never_overlap(store: PostgresStore, pg_url: str) -> None:
    run_id = await new_run(store, 300)
    claimers = await _stores(pg_url, 4)
    got: list[ClaimedChild] = []

    async def claim(s: PostgresStore, owner: str) -> None:
        while rows := await s.children.claim(run_id, 7, owner=owner, lease_s=60):
            got.extend(rows)

    try:
        async with anyio.create_task_group() as tg:
            for i, s in enumerate(claimers):
                tg.start_soon(claim, s, f"wrk_{i}")
    finally:
        for s in claimers:
            await s.close()
    ids = Counter(c["id"] for c in got)
    assert len(ids) == 300 and set(ids.values()) == {1}, "every child claimed exactly once"
    run = await store.runs.get(run_id)
    assert (run["c_pending"], run["c_queued"]) == (0, 300) and invariant_violations(run) == []
    owners = {str(w["id"]) for w in await store.workers.list()}
    assert owners == set(), "no worker registered: claims alone"


async def test_leases_expire_by_the_database_clock(store: PostgresStore) -> None:
    run_id = await new_run(store, 3)
    await store.children.claim(run_id, 3, owner="wrk_a", lease_s=60)
    assert await store.children.reclaim(time.time(), []) == 0, "a 60 s lease has not expired"
    assert await store.children.reclaim(time.time() + 120, []) == 3, "two minutes from now it has"
    run = await store.runs.get(run_id)
    assert (run["c_pending"], run["c_queued"]) == (3, 0)
    leases = await store.db.fetchall("SELECT lease_owner, lease_expires FROM children WHERE run_id = $1", run_id)
    assert {(r["lease_owner"], r["lease_expires"]) for r in leases} == {(None, None)}


async def test_a_heartbeat_renews_leases_and_reaps_by_the_database_clock(store: PostgresStore) -> None:
    run_id = await new_run(store, 2)
    await store.workers.register("wrk_a", host="h", pid=1, capacity=4)
    await store.children.claim(run_id, 2, owner="wrk_a", lease_s=0.01)
    assert await store.workers.heartbeat("wrk_a", lease_s=60, stale_s=3, capacity=4) == ["wrk_a"]
    await anyio.sleep(0.05)
    assert await store.children.reclaim(time.time(), []) == 0, "renewed for a minute"
    assert await store.workers.reap(3600) == []
    await anyio.sleep(0.05)
    assert await store.workers.reap(0.01) == ["wrk_a"]


async def test_commits_wake_listeners_of_other_processes(store: PostgresStore, other: PostgresStore) -> None:
    woke: list[str] = []
    got = anyio.Event()

    def on(channel: str) -> None:
        woke.append(channel)
        if {"events", "runs"} <= set(woke):
            got.set()

    listeners = [other.signals.listen(ch, partial(on, ch)) for ch in ("events", "runs")]
    try:
        await new_run(store, 2)  # another "machine" creates a run: one event, and new work
        with anyio.fail_after(10):
            await got.wait()
    finally:
        for listener in listeners:
            listener.close()
    first, last = (int(x) for x in other._signals.last_payload["events"].split(":"))
    assert (first, last) == (1, 1), "the payload names the new gseqs"


async def test_a_failed_transaction_wakes_no_one(store: PostgresStore, other: PostgresStore) -> None:
    await new_run(store, 1, run_id="wfevalrun_dup")
    woke: list[str] = []
    listener = other.signals.listen("events", lambda: woke.append("events"))
    try:
        with pytest.raises(Exception):  # noqa: B017 - the duplicate id is an integrity error
            await new_run(store, 1, run_id="wfevalrun_dup")
        await new_run(store, 0, run_id="wfevalrun_next")  # a commit after it: its wake-up is the only one
        await _until(lambda: bool(woke))
        await anyio.sleep(0.1)
    finally:
        listener.close()
    assert woke == ["events"]
    assert other._signals.last_payload["events"] == "2:2"


async def test_a_lost_listen_connection_is_restored_and_wakes_everyone(
    store: PostgresStore, other: PostgresStore
) -> None:
    woke = anyio.Event()
    listener = other.signals.listen("events", woke.set)
    try:
        await store.db.fetchall(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orchestrator-listen'"
        )
        await _until(lambda: other._signals._conn is None)

        async def used() -> bool:  # its next use reconnects, and wakes its listeners (they may have missed some)
            await other.runs.claimable(1)
            return woke.is_set()

        with anyio.fail_after(10):
            while True:
                if await used():
                    break
                await anyio.sleep(0.05)
        woke = anyio.Event()
        listener.close()
        listener = other.signals.listen("events", woke.set)
        await new_run(store, 1)
        with anyio.fail_after(10):
            await woke.wait()
    finally:
        listener.close()
