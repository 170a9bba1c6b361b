"""Tokens × prices → cost, in exact integer nano-dollars; a run's `usage` from its summed counters, with no
cost shown for a call that could not be priced."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from orchestrator.core import usage
from orchestrator.core.usage import Price, cost_nanousd, tally, usage_view

GPT4O = Price(2.50, 10.00)
MINI = Price(0.15, 0.60)


@pytest.mark.parametrize(
    ("prompt", "completion", "price", "nanos"),
    [
        (1_000_000, 0, GPT4O, 2_500_000_000),  # a million input tokens: the input price
        (0, 1_000_000, GPT4O, 10_000_000_000),
        (1_200, 350, GPT4O, 6_500_000),  # 1200 × 2.5 + 350 × 10 = 6,500 per million → $0.0065
        (1_200, 350, MINI, 390_000),  # 180 + 210 → $0.00039
        (7, 3, MINI, 2_850),  # tiny calls keep their precision: $0.00000285
        (0, 0, GPT4O, 0),
        (123, 45, Price(0.0, 0.0), 0),  # a free model is priced (at 0), not unknown
    ],
)
def test_cost_of_one_call(prompt: int, completion: int, price: Price, nanos: int) -> None:
    assert cost_nanousd(prompt, completion, price) == nanos


def _run(*passes: dict[str, Any]) -> dict[str, int]:
    """Each pass as its own child (the price may differ between them), summed as a run's stats are."""
    total: Counter[str] = Counter()
    for p in passes:
        total.update(tally([(p["cached"], p["prompt"], p["completion"], p.get("simulated", False))], p.get("price")))
    return dict(total)


def test_a_priced_run_and_its_cached_rerun() -> None:
    calls = [{"cached": False, "prompt": 1_200, "completion": 350, "price": GPT4O}] * 5
    first = usage_view({**_run(*calls), usage.ENGINE_CALLS: 5, usage.CACHE_MISSES: 5})
    assert first["input_tokens"] == 6_000 and first["output_tokens"] == 1_750 and first["total_tokens"] == 7_750
    assert first["cost_usd"] == 0.0325 and first["saved"]["cost_usd"] == 0.0 and first["cache_hit_rate"] == 0.0
    hits = [{**c, "cached": True} for c in calls]
    second = usage_view({**_run(*hits), usage.CACHE_HITS: 5})
    assert second["cost_usd"] == 0.0 and second["input_tokens"] == 0 and second["engine_calls"] == 0
    assert second["saved"] == {"input_tokens": 6_000, "output_tokens": 1_750, "total_tokens": 7_750, "cost_usd": 0.0325}
    assert second["cache_hit_rate"] == 1.0 and second["estimated"] is False


@pytest.mark.parametrize(
    ("passes", "cost"),
    [
        ([{"cached": False, "prompt": 10, "completion": 5, "price": None}], None),  # no price: no cost
        ([{"cached": False, "prompt": None, "completion": None, "price": MINI}], None),  # no token counts
        (  # one unpriced call makes the whole cost unknown, never a partial figure
            [
                {"cached": False, "prompt": 1_000_000, "completion": 0, "price": MINI},
                {"cached": False, "prompt": 10, "completion": 5, "price": None},
            ],
            None,
        ),
        ([], 0.0),  # no call made: it cost nothing
    ],
)
def test_unknown_prices_show_tokens_without_a_cost(passes: list[dict[str, Any]], cost: float | None) -> None:
    view = usage_view(_run(*passes))
    assert view["cost_usd"] == cost
    assert view["input_tokens"] == sum(p["prompt"] or 0 for p in passes)


def test_failed_calls_are_counted_and_never_priced() -> None:
    answered = _run({"cached": False, "prompt": 100, "completion": 10, "price": MINI})
    view = usage_view({**answered, usage.ENGINE_CALLS: 4, usage.FAILED_CALLS: 3})  # a retry, a refusal ...
    assert view["failed_calls"] == 3 and view["cost_usd"] == round(cost_nanousd(100, 10, MINI) / 1e9, 9)


def test_a_child_tally_carries_only_counters_that_are_not_zero() -> None:
    """Every feed event carries the run's counters: a child adds only what it has."""
    counted = tally([(False, 40, 9, True), (True, 40, 9, True), (False, 41, 8, True)], None)
    assert counted == {
        usage.PROMPT: 81,
        usage.COMPLETION: 17,
        usage.CACHED_PROMPT: 40,
        usage.CACHED_COMPLETION: 9,
        usage.UNPRICED_CALLS: 2,
        usage.UNPRICED_HITS: 1,
        usage.SIMULATED: 3,
    }
    assert tally([], GPT4O) == {}


def test_simulated_tokens_are_marked_as_estimates_and_empty_stats_read_as_zero() -> None:
    view = usage_view(_run({"cached": False, "prompt": 40, "completion": 9, "simulated": True}))
    assert view["estimated"] is True and view["cost_usd"] is None and view["total_tokens"] == 49
    empty = usage_view(None)
    assert empty["total_tokens"] == 0 and empty["cost_usd"] == 0.0 and empty["cache_hit_rate"] is None
    assert usage_view({usage.COST: "junk", usage.PROMPT: True})["input_tokens"] == 0
