"""Benchmark: what the pure identity fold costs beside the profile fold.

The issue's mix, derived here from the synthetic history: 10% of events carry
an ``anonymous_id`` (a customer's device), 1% of all events carry both ids and
so link the device to the customer, the other 9% are anonymous only. Measured
in one process run, on the same events, best of ``--rounds``:

- baseline: the profile fold alone (``projections.evolve.apply`` per event,
  by customer), what ``decide`` does per event before the rules;
- identity: ``projections.identity.resolve`` per event (``evidence_of`` and
  ``IdentityGraph.apply``, skipping the events that carry only a customer id);
- both, one after the other per event, and the overhead of adding identity.

Pure steps only (no database, no Kafka): part 1 of issue 13 builds the fold,
not the pipeline stage; the pipeline's rate is lower, so the same cost is a
smaller share of it. ``python bench/identity.py --events 200000`` prints JSON.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engage.synthetic import HistorySpec, generate_lines
from engage.synthetic.identities import with_identities
from events.identity import evidence_of
from events.ingest import parse_line
from events.model import Touchpoint
from projections.evolve import apply
from projections.identity import IdentityGraph, resolve
from projections.profile import Profile


def profiles_only(events: list[Touchpoint]) -> None:
    profiles: dict[str, Profile] = {}
    for event in events:
        profile = profiles.get(event.customer_id)
        if profile is None:
            profile = profiles[event.customer_id] = Profile(event.customer_id)
        apply(profile, event)


def identity_only(events: list[Touchpoint]) -> None:
    graph = IdentityGraph()
    for event in events:
        resolve(graph, event)


def both(events: list[Touchpoint]) -> None:
    profiles: dict[str, Profile] = {}
    graph = IdentityGraph()
    for event in events:
        resolve(graph, event)
        profile = profiles.get(event.customer_id)
        if profile is None:
            profile = profiles[event.customer_id] = Profile(event.customer_id)
        apply(profile, event)


def best_rate(
    step: Callable[[list[Touchpoint]], None], events: list[Touchpoint], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        step(events)
        best = min(best, time.perf_counter() - started)
    return len(events) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = HistorySpec(customers=max(10, args.events // 40), days=180, seed=1)
    parsed = [parse_line(line, n) for n, line in enumerate(generate_lines(spec), 1)]
    events = with_identities([e for e in parsed if isinstance(e, Touchpoint)])
    rates = {
        "profile_fold_per_s": best_rate(profiles_only, events, args.rounds),
        "identity_fold_per_s": best_rate(identity_only, events, args.rounds),
        "both_per_s": best_rate(both, events, args.rounds),
    }
    graph = IdentityGraph()
    linked = sum(len(graph.apply(ev)) for e in events if (ev := evidence_of(e)) is not None)
    print(
        orjson.dumps(
            {
                "events": len(events),
                "with_anonymous_id": sum(e.anonymous_id is not None for e in events),
                "linking": sum(
                    e.anonymous_id is not None and e.anonymous_id != e.customer_id for e in events
                ),
                "persons": len(graph.persons),
                "merged": sum(bool(p.merged_from) for p in graph.persons.values()),
                "identity_linked_records": linked,
                **{k: round(v) for k, v in rates.items()},
                "overhead_of_identity": round(
                    rates["profile_fold_per_s"] / rates["both_per_s"] - 1, 3
                ),
                "machine": f"{platform.machine()}, {platform.python_version()}",
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
