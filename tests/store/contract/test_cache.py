"""Store contract: the pass cache — a request's passes round-trip by index whatever their JSON, a pass is
written once (passes new to a cached request join it, the others stay), entries ride the group commit of
their child (and only if it applies), the least recently used are evicted down to the target, and entries
are cleared by model or by age."""

from __future__ import annotations

import time
from typing import Any

import anyio.lowlevel
import orjson
import pytest

from orchestrator.core import usage
from orchestrator.store import Store
from orchestrator.store.records import ENTRY_OVERHEAD, CacheEntry, ChildStart
from tests.store.conftest import new_run
from tests.store.contract.test_children import done

OUTPUTS: list[Any] = [{"total": 1.5, "items": [{"sku": "A"}]}, "a bare string", 42, [1, 2.5, None], True, {"é": "ü"}]


def entry(key: str, passes: dict[int, Any] | None = None, *, model: str = "gpt-x", pad: int = 0) -> CacheEntry:
    chosen = passes if passes is not None else {0: {"pad": "x" * pad}}
    body = orjson.dumps({str(i): {"o": out, "p": 10, "c": 3} for i, out in chosen.items()})
    return CacheEntry(key=key, engine="openai", model=model, passes_json=body, passes=len(chosen))


async def test_passes_round_trip_by_index_whatever_their_json(store: Store) -> None:
    assert await store.cache.put([entry("req", dict(enumerate(OUTPUTS)))]) == len(OUTPUTS)
    got = await store.cache.get_many(["req", "missing"])
    assert list(got) == ["req"] and sorted(got["req"]) == list(range(len(OUTPUTS)))
    for i, out in enumerate(OUTPUTS):
        hit = got["req"][i]
        assert (hit.key, hit.index, hit.output, hit.engine, hit.model) == ("req", i, out, "openai", "gpt-x")
        assert (hit.prompt_tokens, hit.completion_tokens) == (10, 3) and hit.created_at <= hit.last_used_at
    unmetered = CacheEntry("free", "python", "python:m:f", b'{"0":{"o":{"a":1},"p":null,"c":null}}', 1)
    await store.cache.put([unmetered])
    assert (await store.cache.get_many(["free"]))["free"][0].prompt_tokens is None
    assert await store.cache.get_many([]) == {}


async def test_a_pass_is_written_once_and_new_passes_join_their_request(store: Store) -> None:
    first = entry("req", {0: "a", 1: "b"})
    # The same request twice in a batch (two workers' children): the first pass of an index stays.
    assert await store.cache.put([first, entry("req", {1: "B", 2: "c"})]) == 3
    assert await store.cache.put([entry("req", {0: "A", 3: "d"}), entry("other", {0: "x"})]) == 2
    got = await store.cache.get_many(["req", "other"])
    assert {i: p.output for i, p in got["req"].items()} == {0: "a", 1: "b", 2: "c", 3: "d"}
    stats = await store.cache.stats()
    assert stats.entries == 5
    rows = {m["model"]: m for m in stats.models}
    assert rows["gpt-x"]["entries"] == 5 and rows["gpt-x"]["bytes"] == stats.bytes
    assert await store.cache.put([entry("req", {2: "C"})]) == 0, "nothing new: nothing written"
    assert (await store.cache.stats()).bytes == stats.bytes


async def test_entries_ride_the_group_commit_of_their_child_and_only_if_it_applies(store: Store) -> None:
    run_id = await new_run(store, 2)
    a, b = await store.children.claim(run_id, 2)
    await store.children.apply([ChildStart(a["id"], run_id, "t")], [])
    stats = {usage.CACHE_HITS: 2, usage.CACHE_MISSES: 3}
    await store.children.apply([], [done(a["id"], run_id, cache_puts=[entry("a", {0: 1, 1: 2})], stats=stats)])
    # A child's second finish is refused (it was committed already): so are the entries it carries.
    refused = done(a["id"], run_id, cache_puts=[entry("late")], stats=stats)
    assert await store.children.apply([], [refused]) == []
    assert sorted(await store.cache.get_many(["a", "late"])) == ["a"]
    totals = await store.cache.stats()
    assert (totals.entries, totals.hits, totals.misses) == (2, 2, 3)
    assert (await store.children.get(b["id"]))["status"] == "queued"


async def test_trim_evicts_the_least_recently_used_down_to_the_target(store: Store) -> None:
    entries = [entry(f"e{i:02d}", pad=300) for i in range(20)]
    for e in entries:  # one by one: distinct LRU stamps, oldest first
        await store.cache.put([e])
        await _tick()
    size = entries[0].size
    assert size == len(entries[0].passes_json) + ENTRY_OVERHEAD
    # Used since: e00 and e01 become the most recently used (a commit moves their stamp).
    run_id = await new_run(store, 1)
    (child,) = await store.children.claim(run_id, 1)
    await _tick()
    await store.children.apply([], [done(child["id"], run_id, cache_touches=["e00", "e01"])])
    assert await store.cache.trim(max_bytes=30 * size, target_bytes=10 * size) == 0, "under the bound: nothing"
    removed = await store.cache.trim(max_bytes=15 * size, target_bytes=10 * size)
    assert removed == 10
    left = await store.cache.get_many([e.key for e in entries])
    assert sorted(left) == ["e00", "e01"] + [f"e{i:02d}" for i in range(12, 20)]
    stats = await store.cache.stats()
    assert stats.entries == 10 and stats.bytes == 10 * size <= 15 * size


async def test_clear_by_model_by_age_or_everything(store: Store) -> None:
    await store.cache.put([entry("a", model="gpt-4o"), entry("b", model="gpt-4o-mini"), entry("c", model="llama3")])
    run_id = await new_run(store, 1)
    (child,) = await store.children.claim(run_id, 1)
    await store.children.apply([], [done(child["id"], run_id, stats={usage.CACHE_HITS: 1, usage.CACHE_MISSES: 1})])
    assert await store.cache.clear(older_than_s=3600) == 0, "none is an hour old"
    assert await store.cache.clear(model="gpt-4o") == 1
    assert sorted(await store.cache.get_many(["a", "b", "c"])) == ["b", "c"]
    assert await store.cache.clear(model="gpt-4o*") == 1
    stats = await store.cache.stats()
    assert (stats.entries, stats.hits) == (1, 1), "a partial clear keeps the hit rate"
    assert await store.cache.clear(model="llama_") == 0, "`_` and `%` are literal, `?` and `*` are wildcards"
    await _tick()
    assert await store.cache.clear(older_than_s=0) == 1
    await store.cache.put([entry("d", {0: 1, 1: 2})])
    assert await store.cache.clear() == 2
    stats = await store.cache.stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.misses, stats.oldest) == (0, 0, 0, 0, None)


@pytest.mark.parametrize("n", [1, 700])
async def test_many_requests_in_one_read(store: Store, n: int) -> None:
    entries = [entry(f"key{i:04d}", {0: {"i": i}, 4: i}) for i in range(n)]
    await store.cache.put(entries)
    got = await store.cache.get_many([e.key for e in entries] + [f"nope{i}" for i in range(n)])
    assert len(got) == n and got[f"key{n - 1:04d}"][0].output == {"i": n - 1} and got["key0000"][4].output == 0


async def _tick() -> None:
    """Until the clock has moved on, so that the next stamp differs from the last (both stores keep
    sub-millisecond times; a round trip takes longer anyway): a condition, not a guess of a duration."""
    start = time.time()
    while True:
        if time.time() - start >= 0.001:
            return
        await anyio.lowlevel.checkpoint()
