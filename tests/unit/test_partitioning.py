"""The partitioner must be Kafka's, bit for bit: a customer's partition number is
then the same on the PostgreSQL log and on a Kafka topic with as many partitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.partitioning import murmur2, partition_for

# Kafka's UtilsTest.testMurmur2 vectors (signed 32-bit), as kafka-python gives them unsigned
KAFKA_VECTORS = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(key: str, expected: int) -> None:
    assert murmur2(key.encode()) == expected


@given(st.text(max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_is_stable_and_in_range(customer_id: str, partitions: int) -> None:
    p = partition_for(customer_id, partitions)
    assert 0 <= p < partitions
    assert p == (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
