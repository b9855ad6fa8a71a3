"""A realistic synthetic customer history, for ``engage demo`` and the benchmarks.

The demo and the benchmarks need histories that exercise every rule and every
profile field (newsletter fatigue, thresholds crossed, churn, win-backs,
detractors after support) at sizes of millions of events, so the generator is
a small simulation rather than random records:

* every customer has a persona (newsletter reader, loyal buyer, one-time buyer,
  browser, support-heavy, big spender, casual) that sets its rates;
* customers are acquired over the whole period, some churn for good and some
  go quiet and come back;
* activity follows the week (weekend peaks) and the calendar (a holiday ramp
  from late November, post-holiday sales and returns into January, a small
  Valentine's bump);
* email campaigns go to the customers subscribed at send time.

The simulation runs one day at a time: each customer's next visit is scheduled
into a per-day bucket, and follow-ups that land later (an email opened the next
morning, a support case closed three days on, a refund) go into later buckets.
A day is sorted and emitted once it has been simulated, so the output is in
time order without a global heap, and memory stays bounded by the customers
plus the few weeks of follow-ups still pending. Times are integer
microseconds and the timestamp text is built from a per-day prefix and a table
of clock strings, because ``datetime`` in the inner loop would cost more than
the rest together.

Everything is drawn from ``random.Random(seed)`` in a fixed order, so a seed
gives the same history on every run (and on every machine with the same
Python, whose ``random`` distributions are not promised across versions).
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from operator import itemgetter
from typing import Any, Final

import orjson

from events.errors import EngageError
from events.model import DAY, HOUR, MINUTE, SECOND, Micros
from events.timefmt import format_iso

DEFAULT_START: Final[Micros] = 1_767_225_600 * SECOND
"""2026-01-01T00:00:00Z."""

LONG_START: Final[Micros] = 1_717_200_000 * SECOND
"""2024-06-01T00:00:00Z: where the benchmarks' and tests' long histories start,
so 540 days of it end in the past and no event is refused as from the future."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NEVER: Final = 1 << 62
_FAR_DAY: Final = 1 << 40


@dataclass(frozen=True)
class HistorySpec:
    """What to generate. ``start`` is a parameter so the module never reads the clock."""

    customers: int = 10_000
    days: int = 180
    start: Micros = DEFAULT_START
    seed: int = 7
    bad_lines: int = 0
    duplicate_rate: float = 0.0
    shape: str = "short"
    """``short``: every channel, weekly campaigns (the demo). ``long``: a
    purchase-heavy retail history with no campaigns, where most customers buy
    1–5 times months apart, so inactivity and win-back timers fire about once
    per purchase, as on a real shop's history. Use it with 365 days or more."""


@dataclass(frozen=True, slots=True)
class _Persona:
    name: str
    weight: float
    visit_rate: float  # chance of a visit on an ordinary day (day factor 1.0)
    pages: float  # mean extra pages per visit
    buy_p: float  # chance a visit ends in a purchase
    max_orders: int  # 0 for no limit
    amount_mu: float  # lognormal order value
    amount_sigma: float
    store_share: float  # share of visits that are in-store purchases
    app_share: float
    sub_p: float  # opts in to the newsletter at sign-up
    open_p: float
    click_p: float  # given an open
    support_p: float  # share of visits that are a support contact instead
    churn_p: float
    winback_p: float
    nps_mu: float  # typical NPS answer


_PERSONAS: Final = (
    _Persona(
        "newsletter",
        weight=0.17,
        visit_rate=0.012,
        pages=0.5,
        buy_p=0.0,
        max_orders=0,
        amount_mu=0.0,
        amount_sigma=0.0,
        store_share=0.0,
        app_share=0.1,
        sub_p=1.0,
        open_p=0.6,
        click_p=0.0,
        support_p=0.01,
        churn_p=0.10,
        winback_p=0.05,
        nps_mu=7.0,
    ),
    _Persona(
        "loyal",
        weight=0.14,
        visit_rate=0.095,
        pages=2.0,
        buy_p=0.30,
        max_orders=0,
        amount_mu=math.log(60),
        amount_sigma=0.6,
        store_share=0.08,
        app_share=0.3,
        sub_p=0.9,
        open_p=0.45,
        click_p=0.30,
        support_p=0.03,
        churn_p=0.10,
        winback_p=0.10,
        nps_mu=9.0,
    ),
    _Persona(
        "one_time",
        weight=0.16,
        visit_rate=0.03,
        pages=1.5,
        buy_p=0.45,
        max_orders=1,
        amount_mu=math.log(45),
        amount_sigma=0.7,
        store_share=0.10,
        app_share=0.2,
        sub_p=0.5,
        open_p=0.2,
        click_p=0.05,
        support_p=0.03,
        churn_p=0.50,
        winback_p=0.05,
        nps_mu=6.5,
    ),
    _Persona(
        "browser",
        weight=0.21,
        visit_rate=0.047,
        pages=3.0,
        buy_p=0.0,
        max_orders=0,
        amount_mu=0.0,
        amount_sigma=0.0,
        store_share=0.0,
        app_share=0.35,
        sub_p=0.4,
        open_p=0.15,
        click_p=0.10,
        support_p=0.01,
        churn_p=0.35,
        winback_p=0.10,
        nps_mu=7.0,
    ),
    _Persona(
        "support_heavy",
        weight=0.09,
        visit_rate=0.06,
        pages=1.5,
        buy_p=0.18,
        max_orders=0,
        amount_mu=math.log(80),
        amount_sigma=0.6,
        store_share=0.05,
        app_share=0.2,
        sub_p=0.6,
        open_p=0.25,
        click_p=0.08,
        support_p=0.40,
        churn_p=0.20,
        winback_p=0.10,
        nps_mu=4.5,
    ),
    _Persona(
        "big_spender",
        weight=0.05,
        visit_rate=0.09,
        pages=2.5,
        buy_p=0.35,
        max_orders=0,
        amount_mu=math.log(230),
        amount_sigma=0.7,
        store_share=0.15,
        app_share=0.3,
        sub_p=0.8,
        open_p=0.35,
        click_p=0.30,
        support_p=0.05,
        churn_p=0.08,
        winback_p=0.10,
        nps_mu=8.5,
    ),
    _Persona(
        "casual",
        weight=0.18,
        visit_rate=0.03,
        pages=1.5,
        buy_p=0.12,
        max_orders=0,
        amount_mu=math.log(50),
        amount_sigma=0.8,
        store_share=0.08,
        app_share=0.25,
        sub_p=0.6,
        open_p=0.25,
        click_p=0.10,
        support_p=0.04,
        churn_p=0.25,
        winback_p=0.12,
        nps_mu=7.5,
    ),
)

_LONG_PERSONAS: Final = (
    # a regular: buys every month or two, for as long as they stay
    _Persona("regular", weight=0.30, visit_rate=0.018, pages=0.3, buy_p=0.8, max_orders=0,
             amount_mu=math.log(55), amount_sigma=0.6, store_share=0.25, app_share=0.2,
             sub_p=0.6, open_p=0.3, click_p=0.1, support_p=0.02, churn_p=0.35,
             winback_p=0.15, nps_mu=8.0),
    # an occasional buyer: a few orders, months apart
    _Persona("occasional", weight=0.45, visit_rate=0.008, pages=0.3, buy_p=0.85, max_orders=5,
             amount_mu=math.log(45), amount_sigma=0.7, store_share=0.25, app_share=0.15,
             sub_p=0.5, open_p=0.25, click_p=0.05, support_p=0.02, churn_p=0.30,
             winback_p=0.10, nps_mu=7.5),
    _Persona("one_time", weight=0.25, visit_rate=0.01, pages=0.3, buy_p=0.8, max_orders=1,
             amount_mu=math.log(40), amount_sigma=0.7, store_share=0.3, app_share=0.1,
             sub_p=0.4, open_p=0.2, click_p=0.05, support_p=0.02, churn_p=0.6,
             winback_p=0.05, nps_mu=7.0),
)  # fmt: skip
SHAPES: Final = {"short": _PERSONAS, "long": _LONG_PERSONAS}
"""The history shapes ``HistorySpec.shape`` names, with their persona mixes."""

_WEEKDAY_FACTOR: Final = (0.95, 0.92, 0.97, 1.0, 1.05, 1.25, 1.15)  # Monday first
_FIRST_NAMES: Final = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Xavier", "Yara", "Zoe",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jones", "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Walsh", "Yilmaz", "Zhang",
)  # fmt: skip
_COUNTRIES: Final = ("US", "US", "US", "CA", "GB", "DE", "FR", "MX", "AU", "BR")
_PAGES: Final = (
    "/", "/products", "/cart", "/checkout", "/search?q=shoes", "/search?q=jacket",
    "/blog/spring-styles", "/help/returns", "/help/shipping", "/account", "/deals",
    *(f"/products/sku-{n:04d}" for n in range(40)),
)  # fmt: skip
_REFERRERS: Final = (
    "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
    "https://www.instagram.com/", "https://www.facebook.com/", "", "", "",
)  # fmt: skip
_RESOLUTIONS: Final = ("solved", "solved", "solved", "replaced", "refunded", "no_action")
_COMMENTS: Final = (
    "Great service", "Fast delivery", "Too slow to answer", "Love the products",
    "Shipping was late", "Hard to reach support", "Easy checkout", "Prices went up",
)  # fmt: skip
_SHOP: Final = "https://shop.example.com"
_APP: Final = "app://shop"


@cache
def _clock_table() -> tuple[str, ...]:
    """The clock text of every second of a day: 86,400 short strings, built once."""
    return tuple(
        f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
    )


def _season(day: datetime) -> tuple[float, float]:
    """The calendar's pull on a day: (activity and spend multiplier, refund rate)."""
    md = (day.month, day.day)
    if (11, 24) <= md <= (12, 1):
        return 1.9, 0.05  # Black Friday week
    if (11, 15) <= md <= (12, 23):
        return 1.6, 0.05
    if md in ((12, 24), (12, 25)):
        return 0.8, 0.05
    if md >= (12, 26) or md <= (1, 7):
        return 1.35, 0.14  # post-holiday sales, and the returns
    if md <= (1, 20):
        return 1.0, 0.10
    if (2, 7) <= md <= (2, 14):
        return 1.15, 0.05
    return 1.0, 0.05


def _mean_factor(start: Micros, days: int) -> float:
    first = _EPOCH + timedelta(microseconds=start)
    total = 0.0
    for d in range(days):
        day = first + timedelta(days=d)
        total += _season(day)[0] * _WEEKDAY_FACTOR[day.weekday()]
    return total / days if days else 1.0


def _check(spec: HistorySpec) -> None:
    if spec.customers < 0 or spec.days < 0 or spec.bad_lines < 0:
        raise EngageError("customers, days and bad_lines must be 0 or more")
    if spec.shape not in SHAPES:
        raise EngageError(f"unknown history shape {spec.shape!r}: use one of {', '.join(SHAPES)}")
    if not 0.0 <= spec.duplicate_rate <= 1.0:
        raise EngageError(f"duplicate_rate must be between 0 and 1, got {spec.duplicate_rate}")


_Event = tuple[Micros, str, str, str, str, dict[str, Any]]

# (channel, source) of a visit or an order, by the small number stored for it
_VIA: Final = (("web", "shop"), ("app", "app"), ("store", "pos"))
_WEB, _APP_VIA, _STORE = 0, 1, 2


def _int_array(n: int, value: int) -> array[int]:
    return array("q", [value]) * n


class _Simulation:
    """The state of one run; methods append ``_Event`` tuples to day buckets.

    Customers are positions ``i`` into columns of ``array`` values rather than
    objects: arrays hold no Python references, so the garbage collector never
    walks them. With objects, every full collection (and a history that keeps
    a few days of follow-ups pending triggers many) walked every customer, and
    at 100,000 customers that was a fifth of the run time.
    """

    def __init__(self, spec: HistorySpec) -> None:
        n = spec.customers
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.personas = SHAPES[spec.shape]
        self.start = spec.start
        self.ndays = spec.days
        self.buckets: list[list[_Event]] = [[] for _ in range(spec.days)]
        self.visits: list[array[int]] = [array("q") for _ in range(spec.days)]  # i, t, i, t...
        self.arrivals: list[array[int]] = [array("q") for _ in range(spec.days)]
        self.acquired = array("q")
        self.cids = tuple(f"c-{i + 1:06d}" for i in range(n))
        self.persona_of = array("b")  # index into _PERSONAS
        self.acq_t = _int_array(n, 0)
        self.churn_day = _int_array(n, _FAR_DAY)
        self.quiet_from = _int_array(n, _FAR_DAY)
        self.quiet_to = _int_array(n, _FAR_DAY)
        self.sub_since = _int_array(n, _NEVER)
        self.sub_until = _int_array(n, _NEVER)
        self.n_orders = _int_array(n, 0)
        # the last order, the only one a refund may name
        self.order_no = _int_array(n, 0)
        self.order_t = _int_array(n, 0)
        self.order_via = _int_array(n, 0)
        self.order_amount = array("d", [0.0]) * n
        self.refunded = _int_array(n, 0)
        self.counter = 0
        self._calendar()
        self._diurnal()
        self._population()

    # -- setup ----------------------------------------------------------------

    def _calendar(self) -> None:
        self.weekday: list[int] = []
        self.factor: list[float] = []  # visit intensity
        self.season: list[float] = []  # calendar part only: spend, buy rate
        self.refund_p: list[float] = []
        self.campaigns: list[list[str]] = []
        first = _EPOCH + timedelta(microseconds=self.start)
        for d in range(self.ndays):
            day = first + timedelta(days=d)
            season, refund = _season(day)
            wd = day.weekday()
            ymd = day.strftime("%Y%m%d")
            self.weekday.append(wd)
            self.season.append(season)
            self.factor.append(season * _WEEKDAY_FACTOR[wd])
            self.refund_p.append(refund)
            kinds = []
            if wd == 1:
                kinds.append("newsletter")
            if wd == 4 and (day.toordinal() // 7) % 2 == 0:
                kinds.append("promo")
            if season > 1.3 and wd == 5:
                kinds.append("holiday")
            if self.spec.shape == "long":
                kinds = []  # a purchase history: no campaigns keep customers "seen"
            self.campaigns.append([f"cmp-{ymd}-{k}" for k in kinds])
        self.fmax = max(self.factor, default=1.0)

    def _diurnal(self) -> None:
        """1,000 slots of hours weighted like shop traffic: quiet nights, evening peak."""
        weights = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5,
                   5.5, 5, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 8, 7, 5, 2.5)  # fmt: skip
        total = sum(weights)
        slots: list[int] = []
        for hour, w in enumerate(weights):
            slots.extend([hour] * round(1000 * w / total))
        self.tod = (slots + [20] * 1000)[:1000]

    def _time_in_day(self, d: int) -> Micros:
        r = self.rng.random() * 1000.0
        k = int(r)
        return self.start + d * DAY + self.tod[k] * HOUR + int((r - k) * 3600) * SECOND

    def _population(self) -> None:
        rng = self.rng
        weights = [p.weight for p in self.personas]
        kinds = range(len(self.personas))
        self.persona_of = array("b", rng.choices(kinds, weights, k=self.spec.customers))
        ndays = self.ndays
        if ndays == 0:
            return
        for i, kind in enumerate(self.persona_of):
            persona = self.personas[kind]
            # a third are the existing base, first seen in the first fortnight
            while True:
                if rng.random() < 0.3:
                    d = int(rng.random() * min(14, ndays))
                    break
                d = int(rng.random() * ndays)
                if rng.random() * self.fmax <= self.factor[d]:
                    break
            self.acq_t[i] = self._time_in_day(d)
            r = rng.random()
            if r < persona.churn_p:
                self.churn_day[i] = d + 7 + int(rng.expovariate(1 / 45))
            elif r < persona.churn_p + persona.winback_p:
                quiet_from = d + 10 + int(rng.random() * 60)
                self.quiet_from[i] = quiet_from
                self.quiet_to[i] = quiet_from + 45 + int(rng.random() * 75)
            self.arrivals[d].append(i)

    # -- helpers ----------------------------------------------------------------

    def add(self, t: Micros, cid: str, typ: str, channel: str, source: str, props: Any) -> None:
        d = (t - self.start) // DAY
        if d < self.ndays:
            self.buckets[d].append((t, cid, typ, channel, source, props))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def can_buy(self, i: int) -> bool:
        p = self.personas[self.persona_of[i]]
        return p.buy_p > 0.0 and (p.max_orders == 0 or self.n_orders[i] < p.max_orders)

    def schedule(self, i: int, d: int) -> None:
        """Draw the next visit day: geometric gaps, thinned by the day's intensity."""
        rng = self.rng
        factor, fmax = self.factor, self.fmax
        log_q = math.log(1.0 - min(0.95, self.personas[self.persona_of[i]].visit_rate * fmax))
        churn_day, quiet_from, quiet_to = self.churn_day[i], self.quiet_from[i], self.quiet_to[i]
        while True:
            d += 1 + int(math.log(1.0 - rng.random()) / log_q)
            if d >= churn_day or d >= self.ndays:
                return
            if quiet_from <= d < quiet_to:
                d = quiet_to  # the win-back: back after the quiet spell
                if d >= self.ndays:
                    return
                break
            if rng.random() * fmax <= factor[d]:
                break
        self.visits[d].extend((i, self._time_in_day(d)))

    # -- the day ------------------------------------------------------------------

    def day(self, d: int) -> list[_Event]:
        for i in self.arrivals[d]:
            self.arrive(i, d)
        visits = self.visits[d]
        for k in range(0, len(visits), 2):
            self.visit(visits[k], d, visits[k + 1])
        for campaign in self.campaigns[d]:
            self.campaign(campaign, d)
        self.arrivals[d] = array("q")
        self.visits[d] = array("q")
        bucket = self.buckets[d]
        self.buckets[d] = []
        bucket.sort(key=itemgetter(0))  # stable: ties keep their generation order
        return bucket

    def arrive(self, i: int, d: int) -> None:
        rng = self.rng
        p = self.personas[self.persona_of[i]]
        cid = self.cids[i]
        t = self.acq_t[i]
        first = _FIRST_NAMES[int(rng.random() * len(_FIRST_NAMES))]
        last = _LAST_NAMES[int(rng.random() * len(_LAST_NAMES))]
        signup = "app" if rng.random() < p.app_share else "web"
        traits = {
            "country": _COUNTRIES[int(rng.random() * len(_COUNTRIES))],
            "signup_channel": signup,
            "segment": p.name,
        }
        props = {
            "email": f"{first.lower()}.{last.lower()}.{i + 1}@example.com",
            "name": f"{first} {last}",
            "traits": traits,
        }
        self.add(t, cid, "identify", "other", "crm", props)
        self.acquired.append(i)
        if rng.random() < p.sub_p:
            self.sub_since[i] = t + 5 * SECOND
            self.add(t + 5 * SECOND, cid, "subscribed", signup, "shop", {"list": "newsletter"})
        self.visit(i, d, t + 10 * SECOND, first_visit=True)

    def visit(self, i: int, d: int, t: Micros, first_visit: bool = False) -> None:
        rng = self.rng
        random_ = rng.random
        p = self.personas[self.persona_of[i]]
        cid = self.cids[i]
        add = self.add
        self.schedule(i, d)
        if not first_visit and random_() < p.support_p:
            self.support_contact(i, t)
            return
        can_buy = self.can_buy(i)
        r = random_()
        if can_buy and r < p.store_share and not first_visit:
            self.purchase(i, d, t, _STORE)
            return
        if r < p.store_share + p.app_share:
            via, base = _APP_VIA, _APP
        else:
            via, base = _WEB, _SHOP
        channel, source = _VIA[via]
        pages = 1 + int(rng.expovariate(1.0 / p.pages)) if p.pages > 0 else 1
        referrer = _REFERRERS[int(random_() * len(_REFERRERS))]
        first_props: dict[str, Any] = {"url": base + _PAGES[int(random_() * len(_PAGES))]}
        if referrer:
            first_props["referrer"] = referrer
        add(t, cid, "web_visit", channel, source, first_props)
        for _ in range(min(pages, 15) - 1):
            t += (15 + int(random_() * 180)) * SECOND
            url = base + _PAGES[int(random_() * len(_PAGES))]
            add(t, cid, "web_visit", channel, source, {"url": url})
        if can_buy and random_() < p.buy_p * (0.5 + 0.5 * self.season[d]):
            self.purchase(i, d, t + (30 + int(random_() * 300)) * SECOND, via)
        if self.sub_since[i] == _NEVER and random_() < 0.02:
            self.sub_since[i] = t + 20 * SECOND
            add(t + 20 * SECOND, cid, "subscribed", channel, source, {"list": "newsletter"})

    def purchase(self, i: int, d: int, t: Micros, via: int) -> None:
        rng = self.rng
        p = self.personas[self.persona_of[i]]
        total = rng.lognormvariate(p.amount_mu, p.amount_sigma) * (0.6 + 0.4 * self.season[d])
        r = rng.random()
        n = 1 if r < 0.6 else 2 if r < 0.88 else 3
        items = []
        amount = 0.0
        share = total / n
        for _ in range(n):
            price = round(share * (0.5 + rng.random()), 2)
            qty = 1 if rng.random() < 0.85 else 2
            items.append({"sku": f"sku-{int(rng.random() * 400):04d}", "qty": qty, "price": price})
            amount += price * qty
        amount = round(amount, 2)
        self.counter += 1
        props = {
            "order_id": f"o-{self.counter}",
            "amount": amount,
            "currency": "USD",
            "items": items,
        }
        channel, source = _VIA[via]
        self.add(t, self.cids[i], "purchase", channel, source, props)
        self.n_orders[i] += 1
        self.order_no[i] = self.counter
        self.order_t[i] = t
        self.order_via[i] = via
        self.order_amount[i] = amount
        self.refunded[i] = 0
        if rng.random() < self.refund_p[d]:
            when = t + (2 * DAY) + int(rng.random() * 20 * DAY)
            self.refund(i, when)
        if rng.random() < 0.06:  # relationship NPS a few days after an order
            when = t + 2 * DAY + int(rng.random() * 5 * DAY)
            self.survey(i, when, "nps", p.nps_mu)

    def refund(self, i: int, t: Micros) -> None:
        if self.order_no[i] == 0 or self.refunded[i] or self.order_t[i] >= t:
            return  # nothing to refund, or the order is still in the future
        self.refunded[i] = 1
        amount = self.order_amount[i]
        if self.rng.random() < 0.3:
            amount = round(amount * (0.2 + 0.6 * self.rng.random()), 2)
        props = {"order_id": f"o-{self.order_no[i]}", "amount": amount}
        channel, source = _VIA[self.order_via[i]]
        self.add(t, self.cids[i], "refund", channel, source, props)

    def support_contact(self, i: int, t: Micros) -> None:
        rng = self.rng
        cid = self.cids[i]
        if rng.random() < 0.25:  # a phone call opens a case straight away
            self.case(i, t, "phone")
            return
        conversation = self.next_id("conv")
        self.add(t, cid, "chat_started", "chat", "chat", {"conversation_id": conversation})
        end = t + (2 + int(rng.random() * 25)) * MINUTE + int(rng.random() * 60) * SECOND
        resolved = rng.random() < 0.65
        props = {"conversation_id": conversation, "resolved": resolved}
        self.add(end, cid, "chat_ended", "chat", "chat", props)
        if not resolved:
            self.case(i, end + (1 + int(rng.random() * 10)) * MINUTE, "support")
        elif rng.random() < 0.15:
            self.survey(i, end + 5 * MINUTE, "csat", self.personas[self.persona_of[i]].nps_mu / 2.2)

    def case(self, i: int, t: Micros, channel: str) -> None:
        rng = self.rng
        cid = self.cids[i]
        case_id = self.next_id("case")
        self.add(t, cid, "support_case_opened", channel, "helpdesk", {"case_id": case_id})
        close = t + int(rng.lognormvariate(math.log(30 * HOUR), 0.8))
        wd = self.weekday[min((close - self.start) // DAY, self.ndays - 1)]
        if wd >= 5:  # nobody closes cases at the weekend: Monday morning
            close += (7 - wd) * DAY
        resolution = _RESOLUTIONS[int(rng.random() * len(_RESOLUTIONS))]
        closed = {"case_id": case_id, "resolution": resolution}
        self.add(close, cid, "support_case_closed", "support", "helpdesk", closed)
        if resolution == "refunded":
            self.refund(i, close + 10 * MINUTE)
        if rng.random() < 0.6:
            mood = self.personas[self.persona_of[i]].nps_mu / 2.2 + (
                0.8 if resolution == "solved" else -0.8
            )
            survey = "csat" if rng.random() < 0.7 else "nps"
            score_mu = mood if survey == "csat" else mood * 2.2
            when = close + HOUR + int(rng.random() * 30 * HOUR)
            self.survey(i, when, survey, score_mu)

    def survey(self, i: int, t: Micros, kind: str, mu: float) -> None:
        rng = self.rng
        low, high = (0, 10) if kind == "nps" else (1, 5)
        spread = 2.0 if kind == "nps" else 0.9
        score = min(high, max(low, round(rng.gauss(mu, spread))))
        props: dict[str, Any] = {"survey": kind, "score": score}
        if rng.random() < 0.2:
            props["comment"] = _COMMENTS[int(rng.random() * len(_COMMENTS))]
        self.add(t, self.cids[i], "survey_response", "survey", "surveys", props)

    def campaign(self, campaign: str, d: int) -> None:
        rng = self.rng
        random_ = rng.random
        lognorm = rng.lognormvariate
        add = self.add
        cids, persona_of = self.cids, self.persona_of
        sub_since, sub_until, acq_t = self.sub_since, self.sub_until, self.acq_t
        churn_day, quiet_from, quiet_to = self.churn_day, self.quiet_from, self.quiet_to
        send_t = self.start + d * DAY + (13 if campaign.endswith("newsletter") else 15) * HOUR
        median_delay = math.log(2 * HOUR)
        landing = f"{_SHOP}/campaigns/{campaign}"
        message_prefix = f"m-{campaign[4:12]}-"
        start, ndays, buckets = self.start, self.ndays, self.buckets
        # the ESP sends about 20 a second, and a big list within two hours
        step = min(50_000, 2 * HOUR // max(1, len(self.acquired)))
        for number, i in enumerate(self.acquired):
            ts = send_t + number * step
            if not (sub_since[i] <= ts < sub_until[i]) or acq_t[i] >= ts:
                continue
            p = self.personas[persona_of[i]]
            cid = cids[i]
            message = f"{message_prefix}{i + 1}"
            props = {"campaign_id": campaign, "message_id": message}
            day = (ts - start) // DAY  # self.add, inlined: this is half of all events
            if day < ndays:
                buckets[day].append((ts, cid, "email_sent", "email", "esp", props))
            engaged = d < churn_day[i] and not (quiet_from[i] <= d < quiet_to[i])
            r = random_()
            if engaged and r < p.open_p:
                opened = ts + int(lognorm(median_delay, 1.3))
                day = (opened - start) // DAY
                if day < ndays:
                    buckets[day].append((opened, cid, "email_opened", "email", "esp", props))
                r = random_()
                if r < p.click_p:
                    clicked = opened + (5 + int(random_() * 120)) * SECOND
                    click = {"campaign_id": campaign, "message_id": message, "url": landing}
                    add(clicked, cid, "email_clicked", "email", "esp", click)
                    visit = {"url": landing, "referrer": "email", "utm_campaign": campaign}
                    add(clicked + 3 * SECOND, cid, "web_visit", "web", "shop", visit)
                    if self.can_buy(i) and random_() < p.buy_p:
                        when = clicked + (60 + int(random_() * 900)) * SECOND
                        self.purchase(i, d, when, _WEB)
                elif r > 0.993:
                    self.unsubscribe(i, opened + (10 + int(random_() * 60)) * SECOND)
            elif r > 0.9975 or (not engaged and r > 0.99):
                self.unsubscribe(i, ts + int(random_() * 3 * DAY))

    def unsubscribe(self, i: int, t: Micros) -> None:
        if self.sub_until[i] != _NEVER or t < self.sub_since[i]:
            return  # not subscribed at that instant
        self.sub_until[i] = t
        cid = self.cids[i]
        self.add(t, cid, "unsubscribed", "email", "esp", {"list": "newsletter"})
        if self.rng.random() < 0.25:  # changed their mind: back through the shop's form
            again = t + 7 * DAY + int(self.rng.random() * 50 * DAY)
            self.sub_since[i], self.sub_until[i] = again, _NEVER
            self.add(again, cid, "subscribed", "web", "shop", {"list": "newsletter"})


def generate(spec: HistorySpec) -> Iterator[dict[str, Any]]:
    """Yield the history as JSON ingest objects, in non-decreasing ``occurred_at`` order."""
    _check(spec)
    sim = _Simulation(spec)
    clock = _clock_table()
    prefix, day_lo, day_hi = "", 0, -1  # the UTC day of the last timestamp formatted
    n = 0
    for d in range(spec.days):
        for t, cid, typ, channel, source, props in sim.day(d):
            n += 1
            if not day_lo <= t < day_hi:
                day_lo = t - t % DAY
                day_hi = day_lo + DAY
                prefix = (_EPOCH + timedelta(microseconds=day_lo)).strftime("%Y-%m-%dT")
            rem = t - day_lo
            us = rem % SECOND
            stamp = (
                f"{prefix}{clock[rem // SECOND]}.{us:06d}Z"
                if us
                else prefix + clock[rem // SECOND] + "Z"
            )
            yield {
                "event_id": f"ev-{n}",
                "customer_id": cid,
                "type": typ,
                "occurred_at": stamp,
                "channel": channel,
                "source": source,
                "properties": props,
            }


def estimate_events(spec: HistorySpec) -> int:
    """About how many events ``generate`` yields, for a progress bar; no simulation.

    A curve fitted to measured runs: within about 15% for periods of 1 to
    1,000 days, within 5-10% for the usual 60 days and more. A customer's
    events grow with the days they are around, which grows with the period
    because acquisition is spread over it, then flatten as churn sets in; a
    busy calendar (the holidays) adds visits in proportion to its surplus.
    """
    _check(spec)
    if spec.customers == 0 or spec.days == 0:
        return 0
    surplus = _mean_factor(spec.start, spec.days) - 1.0
    days = min(spec.days, 1000)
    growth = (0.1995 + 0.195 * surplus) * days + (-0.0000534 + 0.00025 * surplus) * days * days
    # past 1,000 days, carry on along the tangent: churn has flattened the curve
    growth += (spec.days - days) * (0.0927 + 0.694 * surplus)
    return max(0, round(spec.customers * (3.87 + growth)))


# -- JSON Lines, with the input a real upstream system produces ---------------

BAD_KINDS: Final = (
    "not_json",
    "missing_field",
    "unknown_type",
    "bad_timestamp",
    "no_zone",
    "negative_amount",
    "amount_as_string",
    "score_out_of_range",
    "missing_property",
    "unknown_channel",
    "empty_id",
    "id_too_long",
    "properties_not_object",
    "not_an_object",
    "unknown_survey",
    "amount_as_bool",
)
"""Every rejection kind ``generate_lines`` mixes in, cycled in this order."""

_REQUIRED_FIELDS: Final = ("customer_id", "event_id", "type", "occurred_at")


def bad_line(kind_index: int, number: int, template: dict[str, Any]) -> str:
    """One deliberately bad line of kind ``BAD_KINDS[kind_index % len]``.

    ``template`` is a good event whose customer and time the bad line borrows,
    so it looks like a real upstream mistake. Ids are ``bad-<number>``.
    """
    kind = BAD_KINDS[kind_index % len(BAD_KINDS)]
    round_ = kind_index // len(BAD_KINDS)
    ev: dict[str, Any] = {
        "event_id": f"bad-{number}",
        "customer_id": template["customer_id"],
        "type": "purchase",
        "occurred_at": template["occurred_at"],
        "channel": "web",
        "source": "shop",
        "properties": {"order_id": f"bad-o-{number}", "amount": 19.99, "currency": "USD"},
    }
    props = ev["properties"]
    if kind == "not_json":
        return orjson.dumps(ev).decode()[: 40 + round_ % 20] + "\n"
    if kind == "missing_field":
        del ev[_REQUIRED_FIELDS[round_ % len(_REQUIRED_FIELDS)]]
    elif kind == "unknown_type":
        ev["type"] = "page_viewd"
    elif kind == "bad_timestamp":
        ev["occurred_at"] = ("2026-13-45T25:61:00Z", "yesterday", "1767225600")[round_ % 3]
    elif kind == "no_zone":
        ev["occurred_at"] = template["occurred_at"].rstrip("Z")
    elif kind == "negative_amount":
        props["amount"] = -19.99
    elif kind == "amount_as_string":
        props["amount"] = "19.99"
    elif kind == "score_out_of_range":
        ev["type"] = "survey_response"
        survey, score = (("nps", 11), ("csat", 0), ("nps", -1), ("csat", 6))[round_ % 4]
        ev["properties"] = {"survey": survey, "score": score}
    elif kind == "missing_property":
        del props["order_id"]
    elif kind == "unknown_channel":
        ev["channel"] = "fax"
    elif kind == "empty_id":
        ev["event_id"] = ""
    elif kind == "id_too_long":
        ev["event_id"] = "bad-" + "x" * 125 + str(number)
    elif kind == "properties_not_object":
        ev["properties"] = ["order_id", "amount"]
    elif kind == "not_an_object":
        return orjson.dumps([ev]).decode() + "\n"
    elif kind == "unknown_survey":
        ev["type"] = "survey_response"
        ev["properties"] = {"survey": "ces", "score": 3}
    elif kind == "amount_as_bool":
        props["amount"] = True
    return orjson.dumps(ev).decode() + "\n"


def generate_lines(spec: HistorySpec) -> Iterator[str]:
    """The history as JSON Lines, each line ending in ``\\n``.

    With ``bad_lines`` set, that many bad lines are spread evenly through the
    output (any left over when the history ends come last), cycling through
    ``BAD_KINDS``. With ``duplicate_rate`` set, after each good line a
    recently sent line is re-sent verbatim with that probability, as a
    retrying upstream would. Both draw from their own generator, so the good
    lines are the same whatever the settings.
    """
    _check(spec)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    if spec.bad_lines == 0 and spec.duplicate_rate == 0.0:
        for ev in generate(spec):
            yield dumps(ev, option=newline).decode()
        return
    rng = random.Random(f"engage-lines-{spec.seed}")
    every = max(1, estimate_events(spec) // (spec.bad_lines + 1))
    recent: deque[str] = deque(maxlen=1000)
    rate = spec.duplicate_rate
    bad = 0
    template: dict[str, Any] = {"customer_id": "c-000001", "occurred_at": format_iso(spec.start)}
    for n, ev in enumerate(generate(spec), start=1):
        line = dumps(ev, option=newline).decode()
        yield line
        recent.append(line)
        template = ev
        if rate and rng.random() < rate:
            yield recent[int(rng.random() * len(recent))]
        if bad < spec.bad_lines and n % every == 0:
            bad += 1
            yield bad_line(bad - 1, bad, ev)
    while bad < spec.bad_lines:
        bad += 1
        yield bad_line(bad - 1, bad, template)
