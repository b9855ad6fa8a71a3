"""Lag, the one definition (``events.log.lag``) the processor, ``engage status``
and the HTTP status share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from events.log import lag


def test_lag_counts_unread_records_per_partition() -> None:
    assert lag({0: 10, 1: 5, 2: 0}, {0: 4}) == 6 + 5
    assert lag({0: 10, 1: 5}, {0: 10, 1: 5}) == 0
    assert lag({0: 10, 1: 5}, {0: 4}, partitions=[1]) == 5


def test_an_offset_past_the_head_is_no_negative_lag() -> None:
    """After a swap or on a log that lost records, a committed offset may pass
    the head; that partition counts 0 rather than cancelling another's lag."""
    assert lag({0: 3, 1: 7}, {0: 9, 1: 2}) == 5


@given(
    st.dictionaries(st.integers(0, 15), st.integers(0, 1000)),
    st.dictionaries(st.integers(0, 15), st.integers(0, 1000)),
)
def test_lag_is_the_records_a_consumer_has_yet_to_read(
    heads: dict[int, int], offsets: dict[int, int]
) -> None:
    unread = [(p, o) for p, head in heads.items() for o in range(offsets.get(p, 0), head)]
    assert lag(heads, offsets) == len(unread)
    some = set(list(heads)[::2])
    assert lag(heads, offsets, some) == len([1 for p, _ in unread if p in some])
