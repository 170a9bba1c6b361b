"""How many children a worker claims at once: the first page fits its slots, later pages hold about
HOLD_S of work at the measured rate, and a page at most doubles."""

from __future__ import annotations

import pytest

from orchestrator.runner.pages import HOLD_S, PAGE, min_page, next_page


@pytest.mark.parametrize(
    ("slots", "passes", "expected"),
    [(64, 5, 12), (8, 5, 1), (4, 5, 1), (10_000, 1, PAGE), (64, 0, 64)],
)
def test_the_first_page_fits_the_slots(slots: int, passes: int, expected: int) -> None:
    assert min_page(slots, passes) == expected


@pytest.mark.parametrize(
    ("taken", "elapsed_s", "current", "expected"),
    [
        (1, 0.0001, 1, 2),  # one child taken at once measures a free slot, not a rate: no jump to PAGE
        (2, 0.0001, 2, 4),
        (200, 0.001, 128, PAGE),  # a fast run reaches the largest page by doubling
        (10, 1.0, 16, 1),  # 10 children/s hold 0.5 child per HOLD_S: the smallest page
        (400, 1.0, 16, int(400 * HOLD_S)),  # the rate, when it is below double the page
        (0, 1.0, 7, 7),  # nothing taken: keep the page
        (5, 0.0, 7, 7),
    ],
)
def test_next_pages_follow_the_rate_and_at_most_double(
    taken: int, elapsed_s: float, current: int, expected: int
) -> None:
    assert next_page(taken, elapsed_s, 1, current) == expected
