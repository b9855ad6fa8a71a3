"""The HTTP API and dashboard: a thin composition root over the Engine's ports.

Handlers borrow an ``Engine`` from a small pool (each engine's connections are
used by one request at a time), call the same functions the CLI calls
(``Publisher``, ``projections.queries``, the dead-letter store) and return
the contract JSON. Nothing here validates events: ``POST /v1/events`` hands
each element to ``events.ingest.parse_object``, the one validator.
"""

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Annotated, Any, Final

import orjson
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.webhooks import DeliveryPolicy, WebhookDeliverer
from engage.config import Settings
from engage.errors import EngageError, StorageError
from engage.http import models
from engage.http.ingest import IngestRefused, ingest_body
from engage.http.keys import ApiKey, ApiKeys
from engage.http.kpi_view import pyramid
from engage.http.metrics import Metrics
from engage.http.openapi_links import add_links
from engage.http.paging import (
    TIMELINE_LIMIT,
    TIMELINE_MAX,
    decode_cursor,
    encode_cursor,
    timeline_page,
)
from engage.http.security import harden
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.log import TOUCHPOINTS, TRIGGERS
from events.model import DAY, HOUR
from events.timefmt import format_iso, format_optional, parse_iso
from projections.adapters.postgres_kpis import read_kpis
from projections.queries import customer_view, timeline
from rules import RuleSet

log = logging.getLogger("engage.http")

MAX_BODY: Final = 5 * 1024 * 1024
MAX_EVENTS: Final = 1_000
FEED_SCAN: Final = 10


@dataclass
class ServeConfig:
    pool_size: int = 4
    max_body: int = MAX_BODY
    max_events: int = MAX_EVENTS
    process: bool = True
    deliver: bool = True
    rules: RuleSet | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    poll_s: float = 1.0


class EnginePool:
    """A few Engines, each used by one thread at a time.

    An engine whose request failed with a storage error is replaced by a fresh
    one, so a database restart costs the requests in flight, not the server.
    """

    def __init__(self, settings: Settings, size: int, rules: RuleSet | None) -> None:
        self._settings = settings
        self._rules = rules
        self._free: queue.Queue[Engine] = queue.Queue()
        self._all: list[Engine] = []
        self._lock = threading.Lock()
        for _ in range(size):
            engine = Engine.open(settings, rules)
            self._all.append(engine)
            self._free.put(engine)
        self.dsn = self._all[0].dsn

    @contextmanager
    def borrow(self) -> Iterator[Engine]:
        engine = self._free.get()
        try:
            yield engine
        except (StorageError, psycopg.Error):
            engine = self._renew(engine)
            raise
        finally:
            self._free.put(engine)

    def _renew(self, old: Engine) -> Engine:
        try:
            fresh = Engine.open(self._settings, self._rules)
        except EngageError as exc:  # still down: keep the old one, try again next time
            log.warning("reconnecting to the database failed: %s", exc)
            return old
        with self._lock:
            self._all[self._all.index(old)] = fresh
        with contextlib.suppress(Exception):
            old.close()
        return fresh

    def close(self) -> None:
        with self._lock:
            for engine in self._all:
                engine.close()


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _errors(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": models.Error, "description": text} for code, text in codes.items()}


AUTH_ERRORS: Final = {
    401: "No API key, or an unknown or revoked one.",
    403: "Wrong scope.",
    422: "A bad parameter.",
}


def _parse_time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def create_app(settings: Settings, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app; ``settings.database_url`` should already be resolved."""
    config = config or ServeConfig()
    state: dict[str, Any] = {}
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        pool = EnginePool(settings, config.pool_size, config.rules)
        state["pool"] = pool
        state["keys"] = ApiKeys(pool.dsn)
        metrics.bind(pool)
        stop = threading.Event()
        threads: list[threading.Thread] = []
        if config.process:
            threads.append(
                threading.Thread(
                    target=_process, args=(settings, config, stop), daemon=True, name="processor"
                )
            )
        if config.deliver:
            threads.append(
                threading.Thread(
                    target=_deliver, args=(settings, config, stop), daemon=True, name="webhooks"
                )
            )
        for t in threads:
            t.start()
        try:
            yield
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=15)
            state["keys"].close()
            pool.close()

    app = FastAPI(
        title="Engage",
        version="0.1.0",
        description=(
            "Touchpoints in, customer-360 profiles and lifecycle triggers out. Every /v1 "
            "endpoint needs `Authorization: Bearer KEY` (`engage keys create NAME "
            "[--scope ingest|read]`): an ingest key may only POST events, a read key may "
            "only read."
        ),
        lifespan=lifespan,
    )
    harden(app)
    add_links(app)
    bearer = HTTPBearer(auto_error=False, description="An API key from `engage keys create`.")

    def _key(creds: HTTPAuthorizationCredentials | None, scope: str) -> ApiKey:
        if creds is None or not creds.credentials:
            raise HTTPException(
                401,
                "missing API key: send `Authorization: Bearer KEY` "
                "(create one with `engage keys create NAME`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        keys: ApiKeys = state["keys"]
        found = keys.lookup(creds.credentials)
        if found is None:
            raise HTTPException(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if found.scope != scope:
            raise HTTPException(
                403,
                f"this key has scope {found.scope!r}; this endpoint needs "
                + ("an ingest key" if scope == "ingest" else "a read key"),
            )
        return found

    def ingest_key(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        return _key(creds, "ingest")

    def read_key(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        return _key(creds, "read")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        response = _json({"error": str(exc.detail)}, exc.status_code)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _json({"error": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(EngageError)
    async def engage_error(_: Request, exc: EngageError) -> Response:
        log.warning("request failed: %s", exc)
        return _json({"error": str(exc)}, 503)

    @app.exception_handler(psycopg.Error)
    async def database_error(_: Request, exc: psycopg.Error) -> Response:
        log.warning("request failed: %s", exc)
        return _json({"error": "the database is unavailable; retry shortly"}, 503)

    event_schema = models.event_schema()

    @app.post(
        "/v1/events",
        summary="Publish one event or a batch",
        description=(
            "The body is one event object or an array of up to "
            f"{config.max_events} of them, in the JSON ingest format. Each event gets a "
            "result: accepted, duplicate (its event_id was seen before: stored once) or "
            "rejected (with the field and reason; it is kept with its raw text in the "
            "dead-letter store). A batch answers 200 even when some events were rejected; "
            "a single rejected event answers 422. Needs an ingest key."
        ),
        responses={
            200: {"model": models.IngestResponse, "description": "Per-event results."},
            **_errors(
                {
                    400: "The body is not valid JSON.",
                    **AUTH_ERRORS,
                    413: "The body or the batch is too large.",
                    422: "A single event was rejected, or the body is not an event or array.",
                }
            ),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                event_schema,
                                {
                                    "type": "array",
                                    "items": event_schema,
                                    "maxItems": config.max_events,
                                },
                            ]
                        }
                    }
                },
            }
        },
    )
    async def post_events(
        request: Request, key: Annotated[ApiKey, Depends(ingest_key)]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body:
            raise HTTPException(413, f"request body over {config.max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_body:
                raise HTTPException(413, f"request body over {config.max_body} bytes")

        def work() -> tuple[int, dict[str, Any]]:
            with state["pool"].borrow() as engine:
                return ingest_body(engine.publisher(), bytes(body), key.name, config.max_events)

        try:
            status, result = await run_in_threadpool(work)
        except IngestRefused as exc:
            raise HTTPException(exc.status, exc.message) from None
        metrics.count_ingest(result)
        return _json(result, status)

    @app.get(
        "/v1/customers",
        summary="Find customers by id prefix",
        responses={200: {"model": models.CustomerSearch}, **_errors(AUTH_ERRORS)},
    )
    def search_customers(
        _: Annotated[ApiKey, Depends(read_key)],
        q: Annotated[str, Query(max_length=128, description="customer_id prefix")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Response:
        with state["pool"].borrow() as engine:
            hits = engine.store.search(q, limit)
        return _json(
            {"items": [{"customer_id": c, "last_seen": format_optional(t)} for c, t in hits]}
        )

    @app.get(
        "/v1/customers/{customer_id}",
        summary="One customer's 360",
        responses={
            200: {"model": models.Customer360},
            **_errors({**AUTH_ERRORS, 404: "Unknown customer.", 422: "Bad as_of."}),
        },
    )
    def get_customer(
        customer_id: str,
        _: Annotated[ApiKey, Depends(read_key)],
        as_of: Annotated[
            str | None, Query(description="ISO 8601 instant: the profile as it was then.")
        ] = None,
    ) -> Response:
        at = _parse_time(as_of, "as_of")
        with state["pool"].borrow() as engine:
            view = customer_view(
                engine.stream, engine.store, engine.codec, customer_id, DEFAULT_CONSUMER, at
            )
        if view is None:
            when = "" if as_of is None else f" as of {as_of}"
            raise HTTPException(404, f"unknown customer {customer_id!r}{when}")
        return _json(view)

    @app.get(
        "/v1/customers/{customer_id}/timeline",
        summary="One customer's touchpoints and triggers in time order",
        responses={
            200: {"model": models.Timeline},
            **_errors({**AUTH_ERRORS, 404: "Unknown customer."}),
        },
    )
    def get_timeline(
        customer_id: str,
        _: Annotated[ApiKey, Depends(read_key)],
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=TIMELINE_MAX)] = TIMELINE_LIMIT,
    ) -> Response:
        with state["pool"].borrow() as engine:
            items = timeline(engine.stream, engine.codec, customer_id)
        if not items:
            raise HTTPException(404, f"unknown customer {customer_id!r}")
        page, next_cursor = timeline_page(items, cursor, limit)
        return _json({"customer_id": customer_id, "items": page, "next_cursor": next_cursor})

    @app.get(
        "/v1/triggers",
        summary="The trigger feed, cursor-paginated",
        description=(
            "Triggers in log order (per customer: in order). Start without a cursor (from "
            "the beginning) or with cursor=latest (only new ones), then pass each "
            "response's next_cursor to continue exactly where you stopped. With filters, a "
            "page may be empty while has_more is true (a stretch without matches was "
            "skipped): keep following next_cursor. At the end of the feed an empty page "
            "returns the same cursor, to poll again later."
        ),
        responses={
            200: {"model": models.TriggerPage},
            **_errors({400: "Bad cursor.", **AUTH_ERRORS, 422: "Bad parameter."}),
        },
    )
    def get_triggers(
        _: Annotated[ApiKey, Depends(read_key)],
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        rule_id: str | None = None,
        kind: str | None = None,
        customer_id: str | None = None,
        since: Annotated[
            str | None, Query(description="Only triggers fired at or after (ISO 8601).")
        ] = None,
    ) -> Response:
        since_us = _parse_time(since, "since")
        codec = TriggerCodec()
        with state["pool"].borrow() as engine:
            partitions = engine.stream.partitions
            if cursor == "latest":
                positions = engine.stream.heads(TRIGGERS)
                positions = {p: positions.get(p, 0) for p in range(partitions)}
            elif cursor:
                positions = decode_cursor(cursor, partitions)
            else:
                positions = dict.fromkeys(range(partitions), 0)
            items: list[dict[str, Any]] = []
            has_more = False
            for _scan in range(FEED_SCAN):
                per = max(limit, 200)
                records = engine.stream.read(TRIGGERS, positions, per)
                if not records:
                    break
                decoded = codec.decode_many([r.payload for r in records])
                full = False
                for record, t in zip(records, decoded, strict=True):
                    if len(items) >= limit:
                        full = True
                        break
                    positions[record.partition] = record.offset + 1
                    if isinstance(t, CodecError):
                        continue
                    if (
                        (rule_id is None or t.rule_id == rule_id)
                        and (kind is None or t.kind == kind)
                        and (customer_id is None or t.customer_id == customer_id)
                        and (since_us is None or t.fired_at >= since_us)
                    ):
                        items.append(trigger_json(t))
                per_partition: dict[int, int] = {}
                for record in records:
                    per_partition[record.partition] = per_partition.get(record.partition, 0) + 1
                if full or any(n >= per for n in per_partition.values()):
                    has_more = True
                if full or items:
                    break
        return _json(
            {"items": items, "next_cursor": encode_cursor(positions), "has_more": has_more}
        )

    @app.get(
        "/v1/triggers/stats",
        summary="Triggers per rule over time (for charts)",
        responses={200: {"model": models.TriggerStats}, **_errors(AUTH_ERRORS)},
    )
    def trigger_stats(
        _: Annotated[ApiKey, Depends(read_key)],
        bucket: Annotated[str, Query(pattern="^(hour|day|week)$")] = "day",
        since: str | None = None,
    ) -> Response:
        since_us = _parse_time(since, "since")
        width = {"hour": HOUR, "day": DAY, "week": 7 * DAY}[bucket]
        with state["pool"].borrow() as engine:
            rows = engine.store.trigger_histogram(width, since_us)
            totals = engine.store.trigger_counts()
        series: dict[str, list[list[int | str]]] = {}
        for rule, start, n in rows:
            series.setdefault(rule, []).append([format_iso(start), n])
        return _json(
            {
                "bucket": bucket,
                "totals": totals,
                "series": [{"rule_id": r, "points": p} for r, p in sorted(series.items())],
            }
        )

    @app.get(
        "/v1/kpis",
        summary="KPI rollups per period, from lifecycle stage and channel to the business",
        description=(
            "The processor keeps the KPIs current as it folds (`engage kpis --json` prints "
            "the same report). `pyramid` condenses the all-time totals into levels from "
            "the whole business down to one customer, for the dashboard."
        ),
        responses={200: {"model": models.Kpis}, **_errors(AUTH_ERRORS)},
    )
    def get_kpis(
        _: Annotated[ApiKey, Depends(read_key)],
        by: Annotated[str, Query(pattern="^(day|week|month)$")] = "week",
        last: Annotated[int | None, Query(ge=1, le=1000, description="Latest N periods")] = None,
    ) -> Response:
        with state["pool"].borrow() as engine:
            report = read_kpis(engine.dsn, DEFAULT_CONSUMER, by)
        if last is not None:
            report["periods"] = report["periods"][-last:]
        report["pyramid"] = pyramid(report)
        return _json(report)

    @app.get(
        "/v1/dlq",
        summary="The dead-letter store, newest last",
        responses={200: {"model": models.DeadLetters}, **_errors(AUTH_ERRORS)},
    )
    def get_dlq(
        _: Annotated[ApiKey, Depends(read_key)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> Response:
        with state["pool"].borrow() as engine:
            letters = engine.dead_letters.list(limit, before)
            total = engine.dead_letters.count()
            older = bool(letters) and bool(engine.dead_letters.list(1, letters[0].id))
        next_before = letters[0].id if older else None
        items = [d.as_json() for d in letters]
        return _json({"total": total, "items": items, "next_before": next_before})

    @app.get(
        "/v1/status",
        summary="Log size, lag, profiles and DLQ size",
        responses={200: {"model": models.Status}, **_errors(AUTH_ERRORS)},
    )
    def get_status(_: Annotated[ApiKey, Depends(read_key)]) -> Response:
        with state["pool"].borrow() as engine:
            return _json(status_of(engine))

    @app.get("/healthz", summary="Liveness and database reachability", response_model=models.Health)
    def healthz() -> Response:
        with state["pool"].borrow() as engine:
            engine.stream.heads(TOUCHPOINTS)
        return _json({"status": "ok"})

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    static = files("engage.http").joinpath("static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(static.joinpath("index.html").read_text())

    app.mount("/static", StaticFiles(packages=[("engage.http", "static")]), name="static")
    return app


def status_of(engine: Engine) -> dict[str, Any]:
    heads = engine.stream.heads(TOUCHPOINTS)
    offsets = engine.store.offsets(DEFAULT_CONSUMER, TOUCHPOINTS)
    lag = sum(max(0, h - offsets.get(p, 0)) for p, h in heads.items())
    return {
        "log_events": sum(heads.values()),
        "triggers": sum(engine.stream.heads(TRIGGERS).values()),
        "profiles": engine.store.count(),
        "dead_letters": engine.dead_letters.count(),
        "lag": lag,
        "clock": format_optional(engine.store.clock(DEFAULT_CONSUMER)),
    }


def _process(settings: Settings, config: ServeConfig, stop: threading.Event) -> None:
    """The embedded processor, inside ``engage serve``: on a database error it
    reopens its connections and carries on from the committed offsets."""
    while not stop.is_set():
        try:
            with Engine.open(settings, config.rules) as engine:
                engine.processor(live=True).run(until_idle=False, stop=stop, idle_wait=0.5)
        except (EngageError, psycopg.Error) as exc:
            log.warning("processor: %s; restarting", exc)
            stop.wait(2.0)


def _deliver(settings: Settings, config: ServeConfig, stop: threading.Event) -> None:
    """Webhook delivery, inside ``engage serve``, restarted the same way."""
    while not stop.is_set():
        try:
            with Engine.open(settings, config.rules) as engine:
                WebhookDeliverer(
                    engine.dsn,
                    engine.stream,
                    config.policy,
                    poll_s=config.poll_s,
                    on_error=log.warning,
                ).run(stop)
        except (EngageError, psycopg.Error) as exc:
            log.warning("webhook delivery: %s; restarting", exc)
            stop.wait(2.0)
