"""KPIs kept current by the processor: pure deltas per batch, pure rollups on read.

The processor folds each event and hands (profile after, event) to a
``KpiBatch``; the batch's deltas are written in the pipeline's own transaction
(``UnitOfWork.save_kpis``), so KPIs are exactly-once like the profiles
and never need a scan of the profiles. Nothing here imports psycopg or reads
the clock, so the delta arithmetic is unit- and property-tested on its own.

Four kinds of fact, all additive, so a replay or another batch cut gives the
same sums:

* **flows** per (day, channel, lifecycle stage at the event): events, new
  customers, purchases, revenue, refunds, emails sent/opened/clicked, NPS and
  CSAT answers, support cases opened. Money is kept in integer units of
  1/10,000, so sums are exact whatever the batch cut (floats are not).
  Weeks, months, stages, channels and the whole business are sums of these.
* **active customers**: customers with a touchpoint of their own (not an
  ``email_sent``) in the period, per (grain, period, stage). A distinct count
  does not add up across days, so each grain (day, ISO week, month, all time)
  is counted for itself: an event counts when the customer's previous
  ``last_seen`` lies in an earlier period. Not split by channel: that would
  need per-channel state in every profile.
* **customers per stage**: a stage is a step function of time between a
  customer's events (``projections.customer360.stage_at``; it changes at
  last_seen + 30d/90d, first purchase + 30d, reactivation + 30d). Each event
  replaces the customer's steps from its instant on, as +1/-1 changes per
  (day, stage), so the count in a stage at the end of any day is the prefix sum
  of the changes up to that day, future time-driven changes included.
* **triggers** per (day, rule).

Known approximation, like ``reactivated`` in the fold: a customer's event that
arrives later than a newer event of the same customer (out of order) changes
the stage steps only from the newest instant seen, and counts as active only
if its period is later than ``last_seen``'s. In order, every figure is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from events.model import DAY, Micros, Touchpoint, TriggerEvent
from events.timefmt import format_iso
from projections.customer360 import CHURNED, QUIET, STAGES, stage_at
from projections.evolve import OUTBOUND
from projections.kpi_periods import (
    _EPOCH_ORDINAL,
    _month,
    day_range,
    first_period_day,
    period,
    period_end,
    period_numbers,
    period_start,
)
from projections.profile import Profile

MONEY_UNIT: Final = 10_000
"""Money is summed as integers of 1/10,000 of a currency unit."""

FLOWS: Final = (
    "events",
    "new_customers",
    "purchases",
    "revenue_units",
    "refunds",
    "refund_units",
    "emails_sent",
    "emails_opened",
    "emails_clicked",
    "nps_responses",
    "nps_promoters",
    "nps_detractors",
    "csat_responses",
    "csat_sum",
    "support_cases_opened",
)
"""The flow counters, in storage column order."""
_F = {name: i for i, name in enumerate(FLOWS)}
_EVENTS, _NEW, _PURCHASES, _REVENUE = (
    _F["events"],
    _F["new_customers"],
    _F["purchases"],
    _F["revenue_units"],
)
_REFUNDS, _REFUND_UNITS = _F["refunds"], _F["refund_units"]
_NPS, _PROMOTERS, _DETRACTORS = _F["nps_responses"], _F["nps_promoters"], _F["nps_detractors"]
_CSAT, _CSAT_SUM = _F["csat_responses"], _F["csat_sum"]
_TYPE_COUNTER: Final = {
    "email_sent": _F["emails_sent"],
    "email_opened": _F["emails_opened"],
    "email_clicked": _F["emails_clicked"],
    "support_case_opened": _F["support_cases_opened"],
}

GRAINS: Final = ("day", "week", "month", "all")
BY: Final = ("day", "week", "month")

Marks = tuple[int, Micros | None, Micros | None, Micros | None]
"""What a stage depends on: (order_count, last_seen, first_purchase_at, reactivated_at)."""


def marks(p: Profile) -> Marks:
    return (p.order_count, p.last_seen, p.first_purchase_at, p.reactivated_at)


def stage_steps(m: Marks, start: Micros) -> list[tuple[Micros, str]]:
    """The stage at ``start`` and every change after it, assuming no further event."""
    count, last, first, react = m
    steps = [(start, stage_at(count, last, first, react, start))]
    if count == 0 or last is None:
        return steps
    edges = {last + QUIET, last + CHURNED}
    if first is not None:
        edges.add(first + QUIET)
    if react is not None:
        edges.add(react + QUIET)
    for edge in sorted(e for e in edges if e > start):
        stage = stage_at(count, last, first, react, edge)
        if stage != steps[-1][1]:
            steps.append((edge, stage))
    return steps


@dataclass
class KpiDelta:
    """One batch's KPI changes, keyed as they are stored."""

    flows: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    active: dict[tuple[str, int, str], int] = field(default_factory=dict)
    stages: dict[tuple[int, str], int] = field(default_factory=dict)
    triggers: dict[tuple[int, str], int] = field(default_factory=dict)

    def merge(self, other: KpiDelta) -> None:
        for key, row in other.flows.items():
            mine = self.flows.setdefault(key, [0] * len(FLOWS))
            for i, v in enumerate(row):
                mine[i] += v
        for ak, n in other.active.items():
            self.active[ak] = self.active.get(ak, 0) + n
        for sk, n in other.stages.items():
            self.stages[sk] = self.stages.get(sk, 0) + n
        for tk, n in other.triggers.items():
            self.triggers[tk] = self.triggers.get(tk, 0) + n

    def pruned(self) -> KpiDelta:
        """Without the zero entries (stage changes often cancel out)."""
        return KpiDelta(
            {k: v for k, v in self.flows.items() if any(v)},
            {k: n for k, n in self.active.items() if n},
            {k: n for k, n in self.stages.items() if n},
            {k: n for k, n in self.triggers.items() if n},
        )


class KpiBatch:
    """Collects one batch's deltas. Call ``customer`` with a customer's profile
    as loaded, ``observe`` after each of that customer's events is folded, and
    ``finish`` once at the end of the batch.

    Stage steps telescope: a customer's steps as stored are replaced once per
    batch from the first event that changes them, each intermediate profile
    contributes only its own interval up to the next change, and the last one
    holds from its start on. An interval inside one day with no stage edge in
    it adds nothing, so most events cost no stage work at all.
    """

    __slots__ = ("_changed", "_last", "_marks", "_open", "_start", "delta")

    def __init__(self) -> None:
        self.delta = KpiDelta()
        self._marks: Marks | None = None  # after the customer's latest event
        self._last: Micros | None = None  # the newest event instant seen
        self._start: Micros = 0  # where the current marks' steps begin
        self._changed = False  # the current marks' steps are still to be added
        self._open = False

    def customer(self, p: Profile) -> None:
        self._close()
        self._marks = marks(p) if p.event_count else None
        # recent is sorted by occurred_at: its last entry is the newest event seen
        self._last = p.recent[-1][3] if p.recent else None
        self._changed = False
        self._open = True

    def finish(self) -> KpiDelta:
        self._close()
        return self.delta

    def _close(self) -> None:
        if self._open and self._changed and self._marks is not None:
            _add_steps(self.delta.stages, stage_steps(self._marks, self._start), 1)
        self._open = False

    def observe(self, p: Profile, event: Touchpoint) -> None:
        t = event.occurred_at
        day = t // DAY
        before = self._marks
        after = (p.order_count, p.last_seen, p.first_purchase_at, p.reactivated_at)
        stage = stage_at(after[0], after[1], after[2], after[3], t)
        delta = self.delta
        key = (day, event.channel, stage)
        row = delta.flows.get(key)
        if row is None:
            row = delta.flows[key] = [0] * len(FLOWS)
        row[_EVENTS] += 1
        kind = event.type
        if before is None:
            row[_NEW] += 1
        if kind == "purchase":
            row[_PURCHASES] += 1
            row[_REVENUE] += round(event.properties["amount"] * MONEY_UNIT)
        elif kind == "refund":
            row[_REFUNDS] += 1
            row[_REFUND_UNITS] += round(event.properties["amount"] * MONEY_UNIT)
        elif kind == "survey_response":
            score: int = event.properties["score"]
            if event.properties["survey"] == "nps":
                row[_NPS] += 1
                if score >= 9:
                    row[_PROMOTERS] += 1
                elif score <= 6:
                    row[_DETRACTORS] += 1
            else:
                row[_CSAT] += 1
                row[_CSAT_SUM] += score
        else:
            counter = _TYPE_COUNTER.get(kind)
            if counter is not None:
                row[counter] += 1
        if kind not in OUTBOUND:
            seen = None if before is None or before[1] is None else before[1] // DAY
            if seen is None or seen < day:  # seen today already: active in every period
                active = delta.active
                k = ("day", day, stage)
                active[k] = active.get(k, 0) + 1
                week = (day + 3) // 7
                if seen is None or (seen + 3) // 7 < week:
                    k = ("week", week, stage)
                    active[k] = active.get(k, 0) + 1
                month = _month(day)
                if seen is None or _month(seen) < month:
                    k = ("month", month, stage)
                    active[k] = active.get(k, 0) + 1
                if seen is None:
                    k = ("all", 0, stage)
                    active[k] = active.get(k, 0) + 1
        last = self._last
        start = t if last is None or t > last else last
        self._last = start
        if after == before:
            return
        if not self._changed:
            # the first change in this batch: take back the stored steps from here on
            if before is not None:
                _add_steps(delta.stages, stage_steps(before, start), -1)
            self._changed = True
        elif before is not None:
            _add_interval(delta.stages, before, self._start, start)
        self._marks = after
        self._start = start

    def count_triggers(self, triggers: Iterable[TriggerEvent]) -> None:
        counts = self.delta.triggers
        for trigger in triggers:
            key = (trigger.fired_at // DAY, trigger.rule_id)
            counts[key] = counts.get(key, 0) + 1


def _add_interval(acc: dict[tuple[int, str], int], m: Marks, start: Micros, end: Micros) -> None:
    """Add the steps of ``m`` over ``[start, end)``: nothing at all when the
    interval stays within a day and no stage edge falls inside it."""
    count, last, first, react = m
    if end <= start:
        return
    if (
        count == 0
        or last is None
        or (
            end <= last + QUIET
            and (first is None or not start < first + QUIET < end)
            and (react is None or not start < react + QUIET < end)
        )
    ):
        # no stage edge inside: one stage from start to end
        first_day, end_day = start // DAY, end // DAY
        if first_day != end_day:
            stage = stage_at(count, last, first, react, start)
            acc[(first_day, stage)] = acc.get((first_day, stage), 0) + 1
            acc[(end_day, stage)] = acc.get((end_day, stage), 0) - 1
        return
    steps = [step for step in stage_steps(m, start) if step[0] < end]
    _add_steps(acc, steps, 1)
    final = (end // DAY, steps[-1][1])
    acc[final] = acc.get(final, 0) - 1


def _add_steps(acc: dict[tuple[int, str], int], steps: list[tuple[Micros, str]], sign: int) -> None:
    previous: str | None = None
    for at, stage in steps:
        day = at // DAY
        if previous is not None:
            acc[(day, previous)] = acc.get((day, previous), 0) - sign
        acc[(day, stage)] = acc.get((day, stage), 0) + sign
        previous = stage


# --- reading: rows as stored -> the JSON report -------------------------------------------

FlowRow = tuple[int, str, str, Sequence[int]]
"""(day, channel, stage, counters in ``FLOWS`` order)."""


def metrics(counters: Sequence[int], active: int | None) -> dict[str, Any]:
    """Plain JSON metrics from summed counters: rates and averages are ratios of sums."""
    c = dict(zip(FLOWS, counters, strict=True))
    revenue = c["revenue_units"] / MONEY_UNIT
    refunds = c["refund_units"] / MONEY_UNIT

    def ratio(num: float, den: float, digits: int = 4) -> float | None:
        return None if den == 0 else round(num / den, digits)

    nps = ratio(100 * (c["nps_promoters"] - c["nps_detractors"]), c["nps_responses"], 1)
    return {
        "active_customers": active,
        "new_customers": c["new_customers"],
        "events": c["events"],
        "purchases": c["purchases"],
        "revenue": round(revenue, 2),
        "refunds": c["refunds"],
        "refund_amount": round(refunds, 2),
        "net_revenue": round(revenue - refunds, 2),
        "average_order_value": ratio(revenue, c["purchases"], 2),
        "emails_sent": c["emails_sent"],
        "emails_opened": c["emails_opened"],
        "emails_clicked": c["emails_clicked"],
        "open_rate": ratio(c["emails_opened"], c["emails_sent"]),
        "click_rate": ratio(c["emails_clicked"], c["emails_sent"]),
        "nps": nps,
        "nps_responses": c["nps_responses"],
        "csat_average": ratio(c["csat_sum"], c["csat_responses"], 2),
        "support_cases_opened": c["support_cases_opened"],
    }


def _add(into: dict[Any, list[int]], key: Any, row: Sequence[int]) -> None:
    acc = into.get(key)
    if acc is None:
        into[key] = list(row)
    else:
        for i, v in enumerate(row):
            acc[i] += v


def report(
    by: str,
    clock: Micros | None,
    flows: Iterable[FlowRow],
    active: Iterable[tuple[str, int, str, int]],
    stage_changes: Iterable[tuple[int, str, int]],
    triggers: Iterable[tuple[int, str, int]],
) -> dict[str, Any]:
    """Roll stored facts up into periods of ``by``: per period and in total, the
    whole business, by lifecycle stage, by channel (and within a channel by
    stage), customers per stage at the period's end, and triggers per rule.

    Periods run from the first day with a fact to the clock's day, bounded by
    the days that hold facts (``day_range``); customers per stage are counted
    at the end of each period, or of the clock's day for the period that holds
    the clock."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, got {by!r}")
    zero = [0] * len(FLOWS)
    cells: dict[tuple[int, str, str], list[int]] = {}  # (period, channel, stage)
    first_day: int | None = None
    for day, channel, stage, counters in flows:
        first_day = day if first_day is None else min(first_day, day)
        _add(cells, (period(by, day), channel, stage), counters)
    actives: dict[tuple[str, int, str], int] = {}
    for grain, number, stage, n in active:
        if grain in (by, "all"):
            actives[(grain, number, stage)] = actives.get((grain, number, stage), 0) + n
    fired: dict[tuple[int, str], int] = {}
    for day, rule_id, n in triggers:
        key = (period(by, day), rule_id)
        fired[key] = fired.get(key, 0) + n
    changes = sorted(stage_changes)
    with_facts = {p for p, _, _ in cells} | {p for p, _ in fired}
    last_fact = max((first_period_day(by, p) for p in with_facts), default=None)
    if changes:
        last_fact = max(changes[-1][0], last_fact or changes[-1][0])
    span = day_range(clock, first_day, last_fact)
    if span is None:
        return {"by": by, "as_of": None, "periods": [], "total": None}
    first_day, last_day = span
    with_facts |= {period(by, d) for d, _, _ in changes}
    numbers, sparse = period_numbers(by, first_day, last_day, with_facts)
    cells_of: dict[int, dict[tuple[str, str], list[int]]] = {}
    for (p, ch, st), r in cells.items():
        cells_of.setdefault(p, {})[(ch, st)] = r
    actives_of: dict[int, dict[str, int]] = {}
    for (g, p, st), n in actives.items():
        if g == by:
            actives_of.setdefault(p, {})[st] = n
    fired_of: dict[int, dict[str, int]] = {}
    for (p, rule), fires in sorted(fired.items()):
        fired_of.setdefault(p, {})[rule] = fires

    def stage_counts_until(day_limit: int, counts: dict[str, int], index: int) -> int:
        while index < len(changes) and changes[index][0] <= day_limit:
            _, stage, n = changes[index]
            counts[stage] = counts.get(stage, 0) + n
            index += 1
        return index

    def rollup(
        keys: Iterable[tuple[str, str]],
        rows: dict[tuple[str, str], list[int]],
        active_of: dict[str, int] | None,
        active_total: int | None,
    ) -> dict[str, Any]:
        business = list(zero)
        by_stage: dict[str, list[int]] = {}
        by_channel: dict[str, list[int]] = {}
        channel_stage: dict[str, dict[str, list[int]]] = {}
        for channel, stage in keys:
            row = rows[(channel, stage)]
            _add({0: business}, 0, row)
            _add(by_stage, stage, row)
            _add(by_channel, channel, row)
            _add(channel_stage.setdefault(channel, {}), stage, row)
        stages_out = {
            s: metrics(by_stage.get(s, zero), None if active_of is None else active_of.get(s, 0))
            for s in STAGES
            if s in by_stage or (active_of and active_of.get(s))
        }
        return {
            "business": metrics(business, active_total),
            "by_stage": stages_out,
            "by_channel": {
                ch: {
                    **metrics(by_channel[ch], None),
                    "by_stage": {s: metrics(r, None) for s, r in sorted(channel_stage[ch].items())},
                }
                for ch in sorted(by_channel)
            },
        }

    periods: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    index = 0
    for number in numbers:
        rows = cells_of.get(number, {})
        active_of = actives_of.get(number, {})
        end_day = (period_end(by, number) - date(1970, 1, 1)).days - 1
        index = stage_counts_until(min(end_day, last_day), counts, index)
        entry: dict[str, Any] = {
            "period": period_start(by, number).isoformat(),
            "end": period_end(by, number).isoformat(),
            **rollup(sorted(rows), rows, active_of, sum(active_of.values())),
            "customers_by_stage": {s: counts.get(s, 0) for s in STAGES},
            "triggers_by_rule": fired_of.get(number, {}),
        }
        periods.append(entry)
    totals: dict[tuple[str, str], list[int]] = {}
    for (_, ch, st), r in cells.items():
        _add(totals, (ch, st), r)
    active_all = {st: n for (g, _, st), n in actives.items() if g == "all"}
    rule_totals: dict[str, int] = {}
    for (_, rule_id), n in fired.items():
        rule_totals[rule_id] = rule_totals.get(rule_id, 0) + n
    return {
        "by": by,
        "as_of": format_iso(clock) if clock is not None else None,
        "sparse": sparse,  # True: empty periods left out (facts decades apart)
        "periods": periods,
        "total": {
            **rollup(sorted(totals), totals, active_all, sum(active_all.values())),
            "customers_by_stage": {s: counts.get(s, 0) for s in STAGES},
            "customers_by_stage_at": date.fromordinal(_EPOCH_ORDINAL + last_day + 1).isoformat(),
            "triggers_by_rule": dict(sorted(rule_totals.items())),
        },
    }
