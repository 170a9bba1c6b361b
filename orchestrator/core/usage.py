"""Tokens, prices and cost: the arithmetic, and a run's `usage` as read from its summed `stats`.

Costs are kept as integer nano-dollars while they are summed (per pass, per child, per run): integer
sums are exact and do not depend on the order in which a run's group commits add them up, so an
unchanged re-run reports exactly the savings its first run reported as cost. A cost is only ever shown
when every call it covers had a price and reported its tokens; otherwise it is `None`, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NANO = 1_000_000_000  # nano-dollars per dollar

# The per-child counters (summed into a run's `stats`) this module reads and the runner writes.
ENGINE_CALLS = "engine_calls"  # calls made to an engine, retries included
CACHE_HITS = "cache_hits"  # passes served from the pass cache (or shared with an identical pass in flight)
CACHE_MISSES = "cache_misses"  # passes looked up in the cache and not found (then called)
PROMPT = "prompt_tokens"  # tokens of the calls this run made (its spend)
COMPLETION = "completion_tokens"
CACHED_PROMPT = "cached_prompt_tokens"  # tokens the cached passes cost when they were first called
CACHED_COMPLETION = "cached_completion_tokens"
COST = "cost_nanousd"  # priced spend of the calls made
SAVED = "saved_nanousd"  # what the cached passes would have cost at today's prices
UNPRICED_CALLS = "unpriced_calls"  # calls with no price for their model, or that reported no tokens
UNPRICED_HITS = "unpriced_hits"  # cached passes that cannot be priced the same way
SIMULATED = "simulated_passes"  # passes answered by the simulated engine: its token counts are estimates
FAILED_CALLS = "failed_calls"  # calls that raised (retried or not): they report no tokens, so no cost covers them


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens, as a models file's `[prices]` table gives them."""

    input_per_mtok: float
    output_per_mtok: float


def cost_nanousd(prompt_tokens: int, completion_tokens: int, price: Price) -> int:
    """The cost of one call in nano-dollars: tokens × $/Mtok × 10⁹ / 10⁶."""
    return round((prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) * 1000)


def usd(nanos: int) -> float:
    return round(nanos / NANO, 9)


# One pass as `tally` reads it: (served from the cache, prompt tokens, completion tokens, simulated engine);
# tokens are None when the engine reported no usage, and such a pass cannot be priced.
PassUsage = tuple[bool, int | None, int | None, bool]


def tally(passes: Iterable[PassUsage], price: Price | None) -> dict[str, int]:
    """A child's successful passes as the counters its run adds up (only those that are not zero: every
    feed event carries the run's counters)."""
    prompt = completion = cached_prompt = cached_completion = cost = saved = 0
    unpriced_calls = unpriced_hits = simulated = 0
    for cached, p, c, sim in passes:
        simulated += sim
        metered = p is not None and c is not None
        p, c = p or 0, c or 0
        if cached:
            cached_prompt, cached_completion = cached_prompt + p, cached_completion + c
            if price is not None and metered:
                saved += cost_nanousd(p, c, price)
            else:
                unpriced_hits += 1
        else:
            prompt, completion = prompt + p, completion + c
            if price is not None and metered:
                cost += cost_nanousd(p, c, price)
            else:
                unpriced_calls += 1
    out = {
        PROMPT: prompt,
        COMPLETION: completion,
        CACHED_PROMPT: cached_prompt,
        CACHED_COMPLETION: cached_completion,
        COST: cost,
        SAVED: saved,
        UNPRICED_CALLS: unpriced_calls,
        UNPRICED_HITS: unpriced_hits,
        SIMULATED: simulated,
    }
    return {k: v for k, v in out.items() if v}


def _int(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_view(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's `usage`: what its engine calls used and cost, and what the pass cache saved it.

    `cost_usd` is the sum of the calls' prices, 0.0 when the run made no call, and None as soon as one
    call could not be priced (no price for its model, or no token counts from its engine). `saved` is the
    same for the passes the cache served. `estimated` says token counts came from the simulated engine,
    which counts characters, not a model's tokens. `failed_calls` (calls that raised: timeouts, refusals,
    unusable answers) report no tokens, so no cost covers them; they are counted, never priced."""
    s = stats or {}
    prompt, completion = _int(s, PROMPT), _int(s, COMPLETION)
    cached_prompt, cached_completion = _int(s, CACHED_PROMPT), _int(s, CACHED_COMPLETION)
    hits, misses = _int(s, CACHE_HITS), _int(s, CACHE_MISSES)
    looked_up = hits + misses
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": None if _int(s, UNPRICED_CALLS) else usd(_int(s, COST)),
        "engine_calls": _int(s, ENGINE_CALLS),
        "failed_calls": _int(s, FAILED_CALLS),
        "cache_hits": hits,
        "cache_hit_rate": round(hits / looked_up, 4) if looked_up else None,
        "saved": {
            "input_tokens": cached_prompt,
            "output_tokens": cached_completion,
            "total_tokens": cached_prompt + cached_completion,
            "cost_usd": None if _int(s, UNPRICED_HITS) else usd(_int(s, SAVED)),
        },
        "estimated": _int(s, SIMULATED) > 0,
        "currency": "USD",
    }
