"""Codec throughput against raw fastavro, measured in one process run.

Decoding is the hot path of the engine, so the number that matters is how
close ``TouchpointCodec.decode_many`` (framing check, fingerprint lookup,
schema resolution, building ``Touchpoint`` objects) comes to fastavro reading
the bare bodies into dicts. Both run here on the same bytes so machine noise
cancels out of the ratio.

    python bench/codec.py [--n 200000] [--batch 1000] [--repeat 3]

Prints one JSON object. Imports fastavro directly only for the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastavro import schemaless_reader, schemaless_writer

from events.codec import (
    TouchpointCodec,
    load_current_schema,
    load_history,
    write_single_object,
)
from events.model import DAY, EVENT_TYPES, Touchpoint

START = 1_700_000_000_000_000

# A plausible mix: mostly email and web, some commerce, a little service.
MIX = {
    "email_sent": 25,
    "email_opened": 20,
    "email_clicked": 6,
    "web_visit": 25,
    "purchase": 8,
    "refund": 1,
    "identify": 3,
    "subscribed": 1,
    "unsubscribed": 1,
    "chat_started": 2,
    "chat_ended": 2,
    "support_case_opened": 2,
    "support_case_closed": 2,
    "survey_response": 2,
}


def _properties(rng: random.Random, type_: str, i: int) -> dict[str, Any]:
    if type_ in ("email_sent", "email_opened"):
        return {"campaign_id": f"cmp-{i % 40}", "message_id": f"msg-{i}"}
    if type_ == "email_clicked":
        return {"campaign_id": f"cmp-{i % 40}", "url": f"https://shop.example/p/{i % 500}"}
    if type_ == "web_visit":
        props: dict[str, Any] = {"url": f"https://shop.example/p/{i % 500}"}
        if rng.random() < 0.5:
            props["referrer"] = "https://search.example/"
        return props
    if type_ == "purchase":
        return {
            "order_id": f"ord-{i}",
            "amount": round(rng.uniform(5, 400), 2),
            "currency": "USD",
            "items": [{"sku": f"sku-{i % 97}", "qty": 1 + i % 3, "price": 19.99}],
        }
    if type_ == "refund":
        return {"order_id": f"ord-{i - 1}", "amount": 19.99}
    if type_ == "identify":
        return {"email": f"c{i}@example.com", "name": "Zoë Müller", "traits": {"tier": "gold"}}
    if type_ in ("subscribed", "unsubscribed"):
        return {"list": "newsletter"}
    if type_ == "chat_started":
        return {"conversation_id": f"conv-{i}"}
    if type_ == "chat_ended":
        return {"conversation_id": f"conv-{i}", "resolved": True}
    if type_ == "support_case_opened":
        return {"case_id": f"case-{i}"}
    if type_ == "support_case_closed":
        return {"case_id": f"case-{i}", "resolution": "refunded"}
    return {"survey": "nps", "score": i % 11, "comment": "fine"}


def make_touchpoints(n: int, seed: int = 7) -> list[Touchpoint]:
    rng = random.Random(seed)
    types = rng.choices(list(MIX), weights=list(MIX.values()), k=n)
    return [
        Touchpoint(
            event_id=f"evt-{i:012d}",
            customer_id=f"cust-{rng.randrange(50_000):06d}",
            type=type_,
            occurred_at=START + i * (DAY // 1000),
            channel=EVENT_TYPES[type_][2],
            source="shop" if i % 3 else None,
            properties=_properties(rng, type_, i),
            extra={"utm_source": "newsletter"} if i % 10 == 0 else {},
        )
        for i, type_ in enumerate(types)
    ]


def best_rate(n: int, repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000, help="decode_many batch size")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, batch, repeat = args.n, args.batch, args.repeat

    codec = TouchpointCodec()
    schema = load_current_schema("engage.Touchpoint")
    touchpoints = make_touchpoints(n)

    payloads: list[bytes] = []

    def encode_all() -> None:
        payloads[:] = codec.encode_many(touchpoints)

    encode_rate = best_rate(n, repeat, encode_all)
    bodies = [payload[10:] for payload in payloads]
    # Raw fastavro on the same bytes: already-built dicts in, bare bodies out.
    records = [codec._to_record(tp) for tp in touchpoints]

    def raw_encode() -> None:
        for record in records:
            out = BytesIO()
            schemaless_writer(out, schema, record)
            out.getvalue()

    def raw_decode() -> None:
        for body in bodies:
            schemaless_reader(BytesIO(body), schema, None)

    def decode_batched() -> None:
        for start in range(0, n, batch):
            codec.decode_many(payloads[start : start + batch])

    def decode_single() -> None:
        decode = codec.decode
        for payload in payloads:
            decode(payload)

    # Old data: the same events as written by the v1 envelope, resolved on read.
    v1 = load_history("engage.Touchpoint")[0]
    v1_payloads = [
        write_single_object(v1, {k: v for k, v in r.items() if k not in ("source", "extra")})
        for r in records
    ]

    def decode_v1() -> None:
        for start in range(0, n, batch):
            codec.decode_many(v1_payloads[start : start + batch])

    for start in range(0, n, batch):
        chunk = codec.decode_many(payloads[start : start + batch])
        assert chunk == touchpoints[start : start + batch], "round trip failed"
        chunk = codec.decode_many(v1_payloads[start : start + batch])
        assert all(isinstance(tp, Touchpoint) for tp in chunk), "v1 decode failed"
    del chunk
    # The fixtures (n touchpoints, dicts and payloads) would otherwise be
    # rescanned by every full collection and blur the comparison.
    gc.collect()
    gc.freeze()

    raw_decode_rate = best_rate(n, repeat, raw_decode)
    decode_many_rate = best_rate(n, repeat, decode_batched)
    result = {
        "n": n,
        "batch": batch,
        "mean_payload_bytes": round(sum(map(len, payloads)) / n, 1),
        "encode_many_per_s": round(encode_rate),
        "raw_fastavro_schemaless_writer_per_s": round(best_rate(n, repeat, raw_encode)),
        "decode_many_per_s": round(decode_many_rate),
        "decode_one_by_one_per_s": round(best_rate(n, repeat, decode_single)),
        "decode_many_v1_writer_per_s": round(best_rate(n, repeat, decode_v1)),
        "raw_fastavro_schemaless_reader_per_s": round(raw_decode_rate),
        "decode_many_vs_raw_reader": round(decode_many_rate / raw_decode_rate, 3),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
