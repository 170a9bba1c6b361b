"""The bare floor: the least an asyncio program can do for the same workload.

N documents × `passes` instant fake-model calls, bounded by a limiter of the same size as the
server's, each document's outputs written as one result row to SQLite through aiosqlite in batched
transactions (WAL, synchronous=NORMAL, as the server). No HTTP, no consensus, no feed: whatever the
server spends beyond this is orchestration overhead.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import orjson

BATCH = 500
OUTPUT = {"invoice_number": "INV-000001", "vendor": "ACME Inc", "total": 1.5}


@dataclass
class FloorResult:
    n_docs: int
    passes: int
    seconds: float
    rows: int

    @property
    def passes_per_s(self) -> float:
        return self.n_docs * self.passes / self.seconds if self.seconds > 0 else 0.0


async def _fake_pass(limiter: asyncio.Semaphore, doc: int, index: int) -> dict[str, object]:
    async with limiter:
        await asyncio.sleep(0)  # an instant model still yields to the loop once, like a real await
        return {**OUTPUT, "doc": doc, "pass": index}


async def run_floor(n_docs: int, passes: int = 5, concurrency: int = 64, workdir: Path | None = None) -> FloorResult:
    with tempfile.TemporaryDirectory(prefix="orch-floor-", dir=workdir) as tmp:
        db = await aiosqlite.connect(str(Path(tmp) / "floor.db"), isolation_level=None)
        try:
            for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
                await db.execute(pragma)
            await db.execute("CREATE TABLE results(doc INTEGER PRIMARY KEY, status TEXT, score REAL, result_json TEXT)")
            return await _timed(db, n_docs, passes, concurrency)
        finally:
            await db.close()


async def _timed(db: aiosqlite.Connection, n_docs: int, passes: int, concurrency: int) -> FloorResult:
    limiter = asyncio.Semaphore(concurrency)
    queue: asyncio.Queue[tuple[int, str, float, bytes] | None] = asyncio.Queue()
    written = 0

    async def writer() -> None:
        nonlocal written
        done = False
        while not done:
            batch = [await queue.get()]
            while len(batch) < BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            if batch[-1] is None:
                done = True
            rows = [r for r in batch if r is not None]
            if rows:
                await db.execute("BEGIN")
                await db.executemany("INSERT INTO results VALUES (?,?,?,?)", rows)
                await db.execute("COMMIT")
                written += len(rows)

    async def document(doc: int) -> None:
        outputs = await asyncio.gather(*(_fake_pass(limiter, doc, i) for i in range(passes)))
        await queue.put((doc, "completed", 1.0, orjson.dumps(outputs)))

    # Documents are fed through a bounded window (like the server's worker pool), never all at once:
    # one task per item created up front starves the writer (DESIGN §6).
    window = asyncio.Semaphore(concurrency)

    async def guarded(doc: int) -> None:
        try:
            await document(doc)
        finally:
            window.release()

    start = time.perf_counter()
    writer_task = asyncio.create_task(writer())
    tasks: set[asyncio.Task[None]] = set()
    for doc in range(n_docs):
        await window.acquire()
        task = asyncio.create_task(guarded(doc))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    await queue.put(None)
    await writer_task
    seconds = time.perf_counter() - start
    return FloorResult(n_docs=n_docs, passes=passes, seconds=seconds, rows=written)
