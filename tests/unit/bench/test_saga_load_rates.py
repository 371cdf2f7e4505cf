"""The saga benchmark's search for its ceiling (`bench/saga_load.py`, `halfway_rate`): after the
sweep's first rate not held, each refining run halves the gap to the highest rate held."""

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from saga_load import halfway_rate


def rows(**held: bool) -> list[dict[str, Any]]:
    return [{"offered_per_s": float(rate.removeprefix("r")), "holds": holds} for rate, holds in held.items()]


def test_the_next_rate_is_halfway_between_the_highest_held_and_the_lowest_not_held_above_it() -> None:
    assert halfway_rate(rows(r25=True, r50=True, r100=False)) == 75.0
    assert halfway_rate(rows(r25=True, r50=True, r100=False, r75=False)) == 62.0
    assert halfway_rate(rows(r25=True, r50=True, r100=False, r75=True)) == 88.0


def test_a_failure_below_a_held_rate_is_noise_and_does_not_bound_the_search() -> None:
    assert halfway_rate(rows(r25=False, r50=True, r100=False)) == 75.0


def test_no_refinement_without_a_held_rate_without_a_failure_above_it_or_once_the_gap_is_small() -> None:
    assert halfway_rate(rows(r25=False)) is None
    assert halfway_rate(rows(r25=True, r50=True)) is None
    assert halfway_rate(rows(r50=True, r60=False)) == 55.0
    assert halfway_rate(rows(r50=True, r55=False)) is None
    assert halfway_rate([]) is None
