"""The simulation that produces a history, one day at a time (see the package docstring)."""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from operator import itemgetter
from typing import Any, Final

from engage.synthetic.personas import (
    APP,
    COMMENTS,
    COUNTRIES,
    FIRST_NAMES,
    LAST_NAMES,
    PAGES,
    REFERRERS,
    RESOLUTIONS,
    SHAPES,
    SHOP,
)
from engage.synthetic.spec import EPOCH, WEEKDAY_FACTOR, HistorySpec, check, season_of
from events.model import DAY, HOUR, MINUTE, SECOND, Micros

NEVER: Final = 1 << 62
FAR_DAY: Final = 1 << 40


@cache
def clock_table() -> tuple[str, ...]:
    """The clock text of every second of a day: 86,400 short strings, built once."""
    return tuple(
        f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
    )


Event = tuple[Micros, str, str, str, str, dict[str, Any]]

# (channel, source) of a visit or an order, by the small number stored for it
VIA: Final = (("web", "shop"), ("app", "app"), ("store", "pos"))
WEB, APP_VIA, STORE = 0, 1, 2


def int_array(n: int, value: int) -> array[int]:
    return array("q", [value]) * n


class Simulation:
    """The state of one run; methods append ``Event`` tuples to day buckets.

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
        self.buckets: list[list[Event]] = [[] for _ in range(spec.days)]
        self.visits: list[array[int]] = [array("q") for _ in range(spec.days)]  # i, t, i, t...
        self.arrivals: list[array[int]] = [array("q") for _ in range(spec.days)]
        self.acquired = array("q")
        self.cids = tuple(f"c-{i + 1:06d}" for i in range(n))
        self.persona_of = array("b")  # index into PERSONAS
        self.acq_t = int_array(n, 0)
        self.churn_day = int_array(n, FAR_DAY)
        self.quiet_from = int_array(n, FAR_DAY)
        self.quiet_to = int_array(n, FAR_DAY)
        self.sub_since = int_array(n, NEVER)
        self.sub_until = int_array(n, NEVER)
        self.n_orders = int_array(n, 0)
        # the last order, the only one a refund may name
        self.order_no = int_array(n, 0)
        self.order_t = int_array(n, 0)
        self.order_via = int_array(n, 0)
        self.order_amount = array("d", [0.0]) * n
        self.refunded = int_array(n, 0)
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
        first = EPOCH + timedelta(microseconds=self.start)
        for d in range(self.ndays):
            day = first + timedelta(days=d)
            season, refund = season_of(day)
            wd = day.weekday()
            ymd = day.strftime("%Y%m%d")
            self.weekday.append(wd)
            self.season.append(season)
            self.factor.append(season * WEEKDAY_FACTOR[wd])
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

    def day(self, d: int) -> list[Event]:
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
        first = FIRST_NAMES[int(rng.random() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(rng.random() * len(LAST_NAMES))]
        signup = "app" if rng.random() < p.app_share else "web"
        traits = {
            "country": COUNTRIES[int(rng.random() * len(COUNTRIES))],
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
            self.purchase(i, d, t, STORE)
            return
        if r < p.store_share + p.app_share:
            via, base = APP_VIA, APP
        else:
            via, base = WEB, SHOP
        channel, source = VIA[via]
        pages = 1 + int(rng.expovariate(1.0 / p.pages)) if p.pages > 0 else 1
        referrer = REFERRERS[int(random_() * len(REFERRERS))]
        first_props: dict[str, Any] = {"url": base + PAGES[int(random_() * len(PAGES))]}
        if referrer:
            first_props["referrer"] = referrer
        add(t, cid, "web_visit", channel, source, first_props)
        for _ in range(min(pages, 15) - 1):
            t += (15 + int(random_() * 180)) * SECOND
            url = base + PAGES[int(random_() * len(PAGES))]
            add(t, cid, "web_visit", channel, source, {"url": url})
        if can_buy and random_() < p.buy_p * (0.5 + 0.5 * self.season[d]):
            self.purchase(i, d, t + (30 + int(random_() * 300)) * SECOND, via)
        if self.sub_since[i] == NEVER and random_() < 0.02:
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
        channel, source = VIA[via]
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
        channel, source = VIA[self.order_via[i]]
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
        resolution = RESOLUTIONS[int(rng.random() * len(RESOLUTIONS))]
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
            props["comment"] = COMMENTS[int(rng.random() * len(COMMENTS))]
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
        landing = f"{SHOP}/campaigns/{campaign}"
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
                        self.purchase(i, d, when, WEB)
                elif r > 0.993:
                    self.unsubscribe(i, opened + (10 + int(random_() * 60)) * SECOND)
            elif r > 0.9975 or (not engaged and r > 0.99):
                self.unsubscribe(i, ts + int(random_() * 3 * DAY))

    def unsubscribe(self, i: int, t: Micros) -> None:
        if self.sub_until[i] != NEVER or t < self.sub_since[i]:
            return  # not subscribed at that instant
        self.sub_until[i] = t
        cid = self.cids[i]
        self.add(t, cid, "unsubscribed", "email", "esp", {"list": "newsletter"})
        if self.rng.random() < 0.25:  # changed their mind: back through the shop's form
            again = t + 7 * DAY + int(self.rng.random() * 50 * DAY)
            self.sub_since[i], self.sub_until[i] = again, NEVER
            self.add(again, cid, "subscribed", "web", "shop", {"list": "newsletter"})


def generate(spec: HistorySpec) -> Iterator[dict[str, Any]]:
    """Yield the history as JSON ingest objects, in non-decreasing ``occurred_at`` order."""
    check(spec)
    sim = Simulation(spec)
    clock = clock_table()
    prefix, day_lo, day_hi = "", 0, -1  # the UTC day of the last timestamp formatted
    n = 0
    for d in range(spec.days):
        for t, cid, typ, channel, source, props in sim.day(d):
            n += 1
            if not day_lo <= t < day_hi:
                day_lo = t - t % DAY
                day_hi = day_lo + DAY
                prefix = (EPOCH + timedelta(microseconds=day_lo)).strftime("%Y-%m-%dT")
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
