"""The hub's rings, subscriptions and history; the stream's progress coalescing. No I/O."""

from __future__ import annotations

import pytest

from orchestrator.feed.hub import Event, Fifo, Hub, Ring
from orchestrator.feed.stream import coalesce


def ev(seq: int, type_: str = "child.finished", run_id: str = "r1", gseq: int | None = None) -> Event:
    return {"gseq": gseq if gseq is not None else seq, "run_id": run_id, "seq": seq, "type": type_, "body": {}}


@pytest.mark.parametrize(
    ("size", "appended", "pos", "limit", "expected"),
    [
        (4, 3, 0, 10, [1, 2, 3]),
        (4, 4, 1, 2, [2, 3]),
        (4, 6, 0, 10, [3, 4, 5, 6]),  # positions before start are clipped
        (4, 6, 3, 10, [4, 5, 6]),
        (4, 7, 3, 4, [4, 5, 6, 7]),  # wraps around the end of the list
        (4, 8, 4, 4, [5, 6, 7, 8]),  # exactly one full turn
        (4, 8, 8, 4, []),
    ],
)
def test_ring_reads_by_absolute_position(size: int, appended: int, pos: int, limit: int, expected: list[int]) -> None:
    ring = Ring(size)
    for i in range(1, appended + 1):
        ring.append(ev(i))
    assert [e["seq"] for e in ring.read(pos, limit)] == expected
    assert ring.start == max(0, appended - size) and ring.end == appended


def test_subscription_reads_what_was_published_after_it() -> None:
    hub = Hub(capacity=8)
    hub.publish([ev(1)])
    with hub.subscribe("r1") as sub:
        hub.publish([ev(2), ev(3, run_id="other", gseq=30), ev(4)])
        assert [e["seq"] for e in sub.read(10)] == [2, 4]
        assert sub.read(10) == [] and not sub.lagged
    assert hub.subscriber_count == 0


def test_a_reader_that_falls_a_ring_behind_is_lagged_and_holds_no_memory() -> None:
    hub = Hub(capacity=4)
    with hub.subscribe("r1") as stuck, hub.subscribe(None) as everyone:
        hub.publish([ev(i) for i in range(1, 11)])
        assert stuck.lagged and stuck.pending == 4  # a view on the shared ring, never more
        assert not everyone.lagged and everyone.pending == 10  # the all-runs history is 4 x capacity
        hub.publish([ev(i) for i in range(11, 51)])
        assert everyone.lagged and everyone.pending == 16
        stuck.rearm()
        assert not stuck.lagged and stuck.lag_count == 1 and stuck.read(10) == []


def test_history_serves_a_resume_only_when_it_reaches_back_far_enough() -> None:
    hub = Hub(capacity=4, history=6)
    hub.publish([ev(i) for i in range(1, 11)])
    got = hub.history_after(6, "r1")
    assert got is not None and [e["seq"] for e in got] == [7, 8, 9, 10]
    assert hub.history_after(3, "r1") is None  # 4 was evicted: the store must answer
    assert hub.history_after(10, "r1") is None  # nothing after the cursor
    all_runs = hub.history_after(8, None)
    assert all_runs is not None and [e["gseq"] for e in all_runs] == [9, 10]


def test_history_refuses_an_out_of_order_publish() -> None:
    hub = Hub(capacity=8)
    hub.publish([ev(1), ev(3), ev(2)])
    assert hub.history_after(0, "r1") is None


def test_close_all_closes_current_and_future_subscriptions() -> None:
    hub = Hub(capacity=4)
    sub = hub.subscribe("r1")
    hub.close_all("going away")
    assert sub.closed and sub.reason == "going away"
    assert hub.subscribe(None).closed


async def test_wait_wakes_on_publish_and_on_close() -> None:
    hub = Hub(capacity=4)
    sub = hub.subscribe(None)
    hub.publish([ev(1)])
    await sub.wait()  # returns at once: something is readable
    assert len(sub.read(10)) == 1
    hub.close_all()
    await sub.wait()
    assert sub.closed and hub.closed.is_set()


@pytest.mark.parametrize(
    ("events", "kept"),
    [
        ([ev(1, "progress"), ev(2, "progress"), ev(3, "progress")], [3]),
        ([ev(1, "progress"), ev(2), ev(3, "progress")], [2, 3]),
        ([ev(1), ev(2, "progress"), ev(3, "run.finished")], [1, 3]),
        ([ev(1, "progress", "a", 1), ev(1, "progress", "b", 2)], [1, 1]),  # other runs never coalesce
    ],
)
def test_progress_coalesces_to_the_latest_of_its_run(events: list[Event], kept: list[int]) -> None:
    assert [e["seq"] for e in coalesce(events)] == kept


def test_fifo_cache_is_bounded() -> None:
    cache: Fifo[int, bytes] = Fifo(3)
    for i in range(10):
        cache.put(i, b"x")
    assert len(cache) == 3 and cache.get(9) == b"x" and cache.get(0) is None
