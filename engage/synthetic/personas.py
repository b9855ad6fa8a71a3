"""The customer personas and the text tables the synthetic history draws from.

A persona sets a customer's rates (visits, orders and their value, email
opens, support contacts, churn and win-back); a history shape is a weighted
mix of personas. The tables (names, pages, referrers, comments) make the
events look like a real shop's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Persona:
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


PERSONAS: Final = (
    Persona(
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
    Persona(
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
    Persona(
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
    Persona(
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
    Persona(
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
    Persona(
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
    Persona(
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

LONG_PERSONAS: Final = (
    # a regular: buys every month or two, for as long as they stay
    Persona("regular", weight=0.30, visit_rate=0.018, pages=0.3, buy_p=0.8, max_orders=0,
             amount_mu=math.log(55), amount_sigma=0.6, store_share=0.25, app_share=0.2,
             sub_p=0.6, open_p=0.3, click_p=0.1, support_p=0.02, churn_p=0.35,
             winback_p=0.15, nps_mu=8.0),
    # an occasional buyer: a few orders, months apart
    Persona("occasional", weight=0.45, visit_rate=0.008, pages=0.3, buy_p=0.85, max_orders=5,
             amount_mu=math.log(45), amount_sigma=0.7, store_share=0.25, app_share=0.15,
             sub_p=0.5, open_p=0.25, click_p=0.05, support_p=0.02, churn_p=0.30,
             winback_p=0.10, nps_mu=7.5),
    Persona("one_time", weight=0.25, visit_rate=0.01, pages=0.3, buy_p=0.8, max_orders=1,
             amount_mu=math.log(40), amount_sigma=0.7, store_share=0.3, app_share=0.1,
             sub_p=0.4, open_p=0.2, click_p=0.05, support_p=0.02, churn_p=0.6,
             winback_p=0.05, nps_mu=7.0),
)  # fmt: skip
SHAPES: Final = {"short": PERSONAS, "long": LONG_PERSONAS}
"""The history shapes ``HistorySpec.shape`` names, with their persona mixes."""

FIRST_NAMES: Final = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Xavier", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES: Final = (
    "Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jones", "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Walsh", "Yilmaz", "Zhang",
)  # fmt: skip
COUNTRIES: Final = ("US", "US", "US", "CA", "GB", "DE", "FR", "MX", "AU", "BR")
PAGES: Final = (
    "/", "/products", "/cart", "/checkout", "/search?q=shoes", "/search?q=jacket",
    "/blog/spring-styles", "/help/returns", "/help/shipping", "/account", "/deals",
    *(f"/products/sku-{n:04d}" for n in range(40)),
)  # fmt: skip
REFERRERS: Final = (
    "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
    "https://www.instagram.com/", "https://www.facebook.com/", "", "", "",
)  # fmt: skip
RESOLUTIONS: Final = ("solved", "solved", "solved", "replaced", "refunded", "no_action")
COMMENTS: Final = (
    "Great service", "Fast delivery", "Too slow to answer", "Love the products",
    "Shipping was late", "Hard to reach support", "Easy checkout", "Prices went up",
)  # fmt: skip
SHOP: Final = "https://shop.example.com"
APP: Final = "app://shop"
