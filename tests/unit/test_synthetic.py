"""The synthetic history: deterministic, ordered, valid and realistic enough to fire every rule.

The contract checks here are written out independently of ``events.ingest``
so the generator and the validator check each other; when the validator is
importable it is run as well.
"""

from __future__ import annotations

import importlib
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.errors import EngageError
from engage.synthetic import (
    BAD_KINDS,
    DEFAULT_START,
    HistorySpec,
    estimate_events,
    generate,
    generate_lines,
)
from events.model import CHANNELS, DAY, EVENT_TYPES, SECOND
from events.timefmt import format_iso_exact, parse_iso

SMALL = HistorySpec(customers=600, days=120, seed=11)
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def _ingest_validate() -> Callable[[object], Any] | None:
    try:
        module = importlib.import_module("events.ingest")
    except ImportError:
        return None
    validate = getattr(module, "validate", None)
    return validate if callable(validate) else None


VALIDATE = _ingest_validate()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def contract_problem(obj: object) -> str | None:
    """Why ``obj`` breaks DESIGN.md's JSON ingest format, or None when it is valid."""
    if not isinstance(obj, dict):
        return "not_an_object"
    for name in ("event_id", "customer_id"):
        if name not in obj:
            return "missing_field"
        value = obj[name]
        if not isinstance(value, str):
            return "wrong_type"
        if not 1 <= len(value) <= 128:
            return "bad_id_length"
    for name in ("type", "occurred_at"):
        if name not in obj:
            return "missing_field"
        if not isinstance(obj[name], str):
            return "wrong_type"
    if obj["type"] not in EVENT_TYPES:
        return "unknown_type"
    stamp = obj["occurred_at"]
    if re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$", stamp):
        return "no_zone"
    try:
        parse_iso(stamp)
    except ValueError:
        return "bad_timestamp"
    if "channel" in obj and obj["channel"] not in CHANNELS:
        return "unknown_channel"
    if "source" in obj and not isinstance(obj["source"], str):
        return "wrong_type"
    props = obj.get("properties", {})
    if not isinstance(props, dict):
        return "properties_not_object"
    required, _, _ = EVENT_TYPES[obj["type"]]
    for name in required:
        if props.get(name) is None:
            return "missing_property"
    if "amount" in required:
        if not _is_number(props["amount"]):
            return "wrong_type"
        if props["amount"] < 0:
            return "negative_amount"
    if obj["type"] == "survey_response":
        survey, score = props["survey"], props["score"]
        if survey not in ("nps", "csat"):
            return "unknown_survey"
        if not _is_number(score) or score != int(score):
            return "wrong_type"
        low, high = (0, 10) if survey == "nps" else (1, 5)
        if not low <= score <= high:
            return "score_out_of_range"
    for name in ("campaign_id", "order_id", "conversation_id", "case_id", "url", "survey"):
        if name in props and not isinstance(props[name], str):
            return "wrong_type"
    if "resolved" in props and not isinstance(props["resolved"], bool):
        return "wrong_type"
    if "traits" in props and not isinstance(props["traits"], dict):
        return "wrong_type"
    if "items" in props and not isinstance(props["items"], list):
        return "wrong_type"
    return None


def line_problem(line: str) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not_json"
    return contract_problem(obj)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(SMALL))


def test_same_seed_same_history_and_another_seed_another(events: list[dict[str, Any]]) -> None:
    assert list(generate(SMALL)) == events
    other = list(itertools.islice(generate(HistorySpec(customers=600, days=120, seed=12)), 500))
    assert other != events[:500]


def test_lines_are_deterministic_with_bad_lines_and_duplicates() -> None:
    spec = HistorySpec(customers=80, days=30, seed=3, bad_lines=20, duplicate_rate=0.05)
    assert list(generate_lines(spec)) == list(generate_lines(spec))


def test_events_are_in_time_order_inside_the_period(events: list[dict[str, Any]]) -> None:
    times = [parse_iso(ev["occurred_at"]) for ev in events]
    assert times == sorted(times)
    assert times[0] >= SMALL.start
    assert times[-1] < SMALL.start + SMALL.days * DAY


def test_every_type_and_channel_appears(events: list[dict[str, Any]]) -> None:
    # the synthetic shop sends the fixed types; `custom` comes from upstream names
    assert {ev["type"] for ev in events} == set(EVENT_TYPES) - {"custom"}
    assert {ev["channel"] for ev in events} == set(CHANNELS)
    assert {ev["source"] for ev in events} >= {"shop", "esp", "chat", "helpdesk", "surveys", "crm"}


def test_event_ids_are_unique_and_customer_ids_look_right(events: list[dict[str, Any]]) -> None:
    ids = [ev["event_id"] for ev in events]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"ev-\d+", i) for i in ids)
    assert all(re.fullmatch(r"c-\d{6}", ev["customer_id"]) for ev in events)


def test_every_event_meets_the_ingest_contract(events: list[dict[str, Any]]) -> None:
    problems = Counter(contract_problem(ev) for ev in events)
    assert problems == {None: len(events)}
    for ev in events:
        assert set(ev) == {
            "event_id",
            "customer_id",
            "type",
            "occurred_at",
            "channel",
            "source",
            "properties",
        }
        assert _ISO_Z.match(ev["occurred_at"]), ev["occurred_at"]
        assert format_iso_exact(parse_iso(ev["occurred_at"])) == ev["occurred_at"]
        if ev["type"] == "purchase":
            props = ev["properties"]
            assert props["currency"] == "USD"
            assert props["items"]
            total = sum(item["price"] * item["qty"] for item in props["items"])
            assert props["amount"] == pytest.approx(total, abs=0.011)


def test_the_ingest_validator_accepts_every_event(events: list[dict[str, Any]]) -> None:
    if VALIDATE is None:
        pytest.skip("events.ingest.validate is not available")
    for ev in events:
        touchpoint = VALIDATE(orjson.loads(orjson.dumps(ev)))
        assert touchpoint.event_id == ev["event_id"]
        assert touchpoint.occurred_at == parse_iso(ev["occurred_at"])


def test_lines_are_the_events_as_json_lines() -> None:
    spec = HistorySpec(customers=50, days=20, seed=5)
    lines = list(generate_lines(spec))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [orjson.loads(line) for line in lines] == list(generate(spec))


def test_bad_lines_count_is_honoured_and_covers_every_rejection_kind() -> None:
    bad = 2 * len(BAD_KINDS) + 5
    spec = HistorySpec(customers=150, days=40, seed=9, bad_lines=bad)
    lines = list(generate_lines(spec))
    problems = [line_problem(line) for line in lines]
    rejected = [(line, kind) for line, kind in zip(lines, problems, strict=True) if kind]
    assert len(rejected) == bad
    kinds = {kind for _, kind in rejected}
    assert kinds >= {
        "not_json",
        "missing_field",
        "unknown_type",
        "bad_timestamp",
        "no_zone",
        "negative_amount",
        "wrong_type",
        "score_out_of_range",
        "missing_property",
        "unknown_channel",
        "bad_id_length",
        "properties_not_object",
        "not_an_object",
        "unknown_survey",
    }
    # spread through the file, not piled at the end
    positions = [i for i, kind in enumerate(problems) if kind]
    assert positions[0] < len(lines) // 4
    assert positions[len(positions) // 2] < 3 * len(lines) // 4
    # the good lines are exactly the history without bad lines
    good = [line for line, kind in zip(lines, problems, strict=True) if kind is None]
    assert good == list(generate_lines(HistorySpec(customers=150, days=40, seed=9)))
    if VALIDATE is not None:
        for line, _ in rejected:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            with pytest.raises(EngageError):
                VALIDATE(obj)


def test_bad_lines_beyond_the_history_still_all_come_out() -> None:
    spec = HistorySpec(customers=2, days=2, seed=1, bad_lines=40)
    lines = list(generate_lines(spec))
    assert sum(1 for line in lines if line_problem(line)) == 40
    empty = list(generate_lines(HistorySpec(customers=0, days=0, bad_lines=3)))
    assert len(empty) == 3 and all(line_problem(line) for line in empty)


def test_duplicates_resend_an_already_used_event_id_verbatim() -> None:
    spec = HistorySpec(customers=200, days=60, seed=4, duplicate_rate=0.05)
    lines = list(generate_lines(spec))
    first_seen: dict[str, str] = {}
    repeats = 0
    for line in lines:
        event_id = orjson.loads(line)["event_id"]
        if event_id in first_seen:
            repeats += 1
            assert line == first_seen[event_id]
        else:
            first_seen[event_id] = line
    good = len(first_seen)
    assert good == sum(1 for _ in generate(HistorySpec(customers=200, days=60, seed=4)))
    expected = 0.05 * good
    assert abs(repeats - expected) < 5 * math.sqrt(expected), (repeats, expected)
    assert list(first_seen.values()) == list(
        generate_lines(HistorySpec(customers=200, days=60, seed=4))
    )


@pytest.mark.parametrize(
    "spec",
    [
        HistorySpec(customers=300, days=7),
        HistorySpec(customers=300, days=30, seed=2),
        HistorySpec(customers=300, days=90, seed=3),
        HistorySpec(customers=300, days=365, seed=4),
        HistorySpec(customers=300, days=60, start=DEFAULT_START - 40 * DAY),
    ],
)
def test_estimate_is_close_to_the_real_count(spec: HistorySpec) -> None:
    actual = sum(1 for _ in generate(spec))
    assert abs(estimate_events(spec) - actual) <= 0.2 * actual, (estimate_events(spec), actual)


def test_default_spec_estimate_is_in_the_intended_range() -> None:
    assert 300_000 <= estimate_events(HistorySpec()) <= 500_000


def test_empty_and_invalid_specs() -> None:
    assert list(generate(HistorySpec(customers=0))) == []
    assert list(generate(HistorySpec(days=0))) == []
    assert estimate_events(HistorySpec(customers=0)) == 0
    for bad in (
        HistorySpec(customers=-1),
        HistorySpec(days=-1),
        HistorySpec(bad_lines=-1),
        HistorySpec(duplicate_rate=1.5),
    ):
        with pytest.raises(EngageError):
            list(generate_lines(bad))


def test_an_unaligned_start_keeps_its_microseconds() -> None:
    start = DEFAULT_START + 8 * 3600 * SECOND + 123_456
    evs = list(generate(HistorySpec(customers=30, days=5, start=start)))
    assert evs
    visits = [ev for ev in evs if ev["type"] in ("identify", "web_visit")]
    assert visits
    assert all(ev["occurred_at"].endswith(".123456Z") for ev in visits)
    assert min(parse_iso(ev["occurred_at"]) for ev in evs) >= start


@settings(max_examples=25, deadline=None)
@given(
    customers=st.integers(0, 25),
    days=st.integers(0, 25),
    seed=st.integers(0, 2**32),
    start=st.integers(0, 4_000_000_000).map(lambda s: s * SECOND),
)
def test_any_small_history_is_ordered_unique_and_valid(
    customers: int, days: int, seed: int, start: int
) -> None:
    evs = list(generate(HistorySpec(customers=customers, days=days, seed=seed, start=start)))
    times = [parse_iso(ev["occurred_at"]) for ev in evs]
    assert times == sorted(times)
    assert all(start <= t < start + days * DAY for t in times)
    assert len({ev["event_id"] for ev in evs}) == len(evs)
    assert all(contract_problem(ev) is None for ev in evs)


# -- realism: the history must exercise the rules and the profile -------------


def test_each_customer_starts_with_identify(events: list[dict[str, Any]]) -> None:
    first: dict[str, dict[str, Any]] = {}
    for ev in events:
        first.setdefault(ev["customer_id"], ev)
    assert len(first) == SMALL.customers
    for ev in first.values():
        assert ev["type"] == "identify"
        assert {"email", "name", "traits"} <= set(ev["properties"])


def test_follow_ups_come_after_what_they_follow(events: list[dict[str, Any]]) -> None:
    orders: dict[str, tuple[str, float]] = {}
    chats: dict[str, str] = {}
    cases: dict[str, str] = {}
    refunds = closed = ended = 0
    for ev in events:
        props, cid = ev["properties"], ev["customer_id"]
        kind = ev["type"]
        if kind == "purchase":
            orders[props["order_id"]] = (cid, props["amount"])
        elif kind == "refund":
            owner, amount = orders[props["order_id"]]  # a prior order...
            assert owner == cid  # ...of the same customer
            assert props["amount"] <= amount
            refunds += 1
        elif kind == "chat_started":
            chats[props["conversation_id"]] = cid
        elif kind == "chat_ended":
            assert chats.pop(props["conversation_id"]) == cid
            assert isinstance(props["resolved"], bool)
            ended += 1
        elif kind == "support_case_opened":
            cases[props["case_id"]] = cid
        elif kind == "support_case_closed":
            assert cases.pop(props["case_id"]) == cid
            assert props["resolution"]
            closed += 1
    assert refunds > 0 and closed > 0 and ended > 0


def test_no_email_is_sent_to_an_unsubscribed_customer(events: list[dict[str, Any]]) -> None:
    subscribed: dict[str, bool] = {}
    unsubscribes = resubscribes = sent = 0
    for ev in events:
        cid, kind = ev["customer_id"], ev["type"]
        if kind == "subscribed":
            resubscribes += subscribed.get(cid) is False
            subscribed[cid] = True
        elif kind == "unsubscribed":
            assert subscribed.get(cid) is True
            subscribed[cid] = False
            unsubscribes += 1
        elif kind == "email_sent":
            assert subscribed.get(cid) is True
            sent += 1
    assert sent > 0 and unsubscribes > 0 and resubscribes > 0


def test_personas_show_up_in_the_history(events: list[dict[str, Any]]) -> None:
    spend: Counter[str] = Counter()
    orders: Counter[str] = Counter()
    opens: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    visits: Counter[str] = Counter()
    support: Counter[str] = Counter()
    surveys: defaultdict[str, list[int]] = defaultdict(list)
    for ev in events:
        cid, kind, props = ev["customer_id"], ev["type"], ev["properties"]
        if kind == "purchase":
            spend[cid] += props["amount"]
            orders[cid] += 1
        elif kind == "refund":
            spend[cid] -= props["amount"]
        elif kind == "email_opened":
            opens[cid] += 1
        elif kind == "email_clicked":
            clicks[cid] += 1
        elif kind == "web_visit":
            visits[cid] += 1
        elif kind in ("support_case_opened", "chat_started"):
            support[cid] += 1
        elif kind == "survey_response":
            surveys[props["survey"]].append(props["score"])
    customers = {ev["customer_id"] for ev in events}
    big = [c for c in customers if spend[c] >= 1000]
    readers = [c for c in customers if opens[c] >= 5 and clicks[c] == 0 and orders[c] == 0]
    repeat = [c for c in customers if orders[c] >= 2]
    once = [c for c in customers if orders[c] == 1]
    browsers = [c for c in customers if visits[c] >= 3 and orders[c] == 0]
    heavy = [c for c in customers if support[c] >= 3]
    assert len(big) >= 5
    assert len(readers) >= 20
    assert len(repeat) >= 30
    assert len(once) >= 30
    assert len(browsers) >= 30
    assert len(heavy) >= 5
    assert set(surveys["nps"]) <= set(range(11)) and len(set(surveys["nps"])) >= 8
    assert set(surveys["csat"]) <= set(range(1, 6)) and len(set(surveys["csat"])) == 5
    assert any(score <= 6 for score in surveys["nps"])  # detractors exist


def test_churned_and_won_back_customers_exist(events: list[dict[str, Any]]) -> None:
    """Activity the customer chooses (not email we send them) has long gaps and endings."""
    end = SMALL.start + SMALL.days * DAY
    active: defaultdict[str, list[int]] = defaultdict(list)
    for ev in events:
        if ev["type"] in ("web_visit", "purchase", "email_opened", "chat_started"):
            active[ev["customer_id"]].append(parse_iso(ev["occurred_at"]))
    quiet_for_good = [c for c, ts in active.items() if ts[-1] < end - 60 * DAY and len(ts) >= 3]
    won_back = [
        c
        for c, ts in active.items()
        if any(b - a >= 45 * DAY for a, b in itertools.pairwise(ts)) and ts[-1] > end - 30 * DAY
    ]
    assert len(quiet_for_good) >= 10
    assert len(won_back) >= 10


def test_weekly_and_holiday_seasonality() -> None:
    start = parse_iso("2025-09-01T00:00:00Z")  # a Monday
    spec = HistorySpec(customers=1500, days=182, start=start, seed=5)
    visits: Counter[int] = Counter()
    buys: Counter[int] = Counter()
    for ev in generate(spec):
        day = (parse_iso(ev["occurred_at"]) - start) // DAY
        if ev["type"] == "web_visit":
            visits[day] += 1
        elif ev["type"] == "purchase":
            buys[day] += 1

    def mean(
        counter: Counter[int], days: range, weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    ) -> float:
        chosen = [counter[d] for d in days if d % 7 in weekdays]
        return sum(chosen) / len(chosen)

    weeks = range(14, 182)
    assert mean(visits, weeks, (5,)) > 1.1 * mean(visits, weeks, (0, 1, 2))  # Saturdays
    # Nov 24 - Dec 21 against Feb 2 - Mar 1, when more customers have been acquired
    holidays, february = range(84, 112), range(154, 182)
    assert mean(buys, holidays) > 1.2 * mean(buys, february)
    october = range(35, 63)  # Oct 6 - Nov 2: nearly as many customers acquired
    assert mean(visits, holidays) > 1.5 * mean(visits, october)


def test_email_campaigns_have_plausible_open_and_click_rates(
    events: list[dict[str, Any]],
) -> None:
    campaigns = Counter(
        ev["properties"]["campaign_id"] for ev in events if ev["type"] == "email_sent"
    )
    assert len(campaigns) >= 20
    assert all(re.fullmatch(r"cmp-\d{8}-\w+", c) for c in campaigns)
    sent = sum(campaigns.values())
    opened = sum(1 for ev in events if ev["type"] == "email_opened")
    clicked = sum(1 for ev in events if ev["type"] == "email_clicked")
    assert 0.15 < opened / sent < 0.5
    assert 0.005 < clicked / sent < opened / sent


def test_the_identity_mix_as_lines_parses_to_the_mix_as_touchpoints() -> None:
    """``bench/identity_pipeline.py --from-lines`` publishes the mix as JSON
    Lines: it must be the very history the touchpoint mix is, event for event."""
    from engage.synthetic.identities import with_identities, with_identities_lines
    from events.ingest import parse_line
    from events.model import Touchpoint

    lines = list(itertools.islice(generate_lines(SMALL), 3000))
    plain = [parse_line(line, n) for n, line in enumerate(lines, 1)]
    assert all(isinstance(e, Touchpoint) for e in plain)
    expected = with_identities([e for e in plain if isinstance(e, Touchpoint)], anonymous=0.3)
    mixed = with_identities_lines(lines, anonymous=0.3)
    got = [parse_line(line, n) for n, line in enumerate(mixed, 1)]
    assert got == expected
    anonymous_only = [e for e in expected if e.anonymous_id == e.customer_id]
    assert 600 < len(anonymous_only) < 1200  # the draws did mix, about 29% of 3000
    assert any(
        '"customer_id"' not in line for line in mixed
    )  # sent as an SDK sends a device: no customer id at all
