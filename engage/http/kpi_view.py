"""The KPI pyramid the dashboard draws, derived from the KPI report
(``projections.adapters.postgres_kpis.read_kpis``): from the whole business at
the top, through channels and lifecycle stages, down to one customer. Every
level but the stages is an all-time total, and says so: the stages are the
customers in each stage now, and an all-time figure beside them read as one."""

from __future__ import annotations

from typing import Any

from projections.customer360 import STAGES


def _per(num: float | None, den: float | None) -> float | None:
    return None if not num or not den else round(num / den, 2)


def pyramid(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Levels, top first; each ``{"name", "values": [[label, value], ...]}``."""
    total = report["total"]
    business = total["business"]
    channels = sorted(
        total["by_channel"].items(), key=lambda item: item[1]["net_revenue"], reverse=True
    )
    customers = sum(total["customers_by_stage"].values())
    return [
        {
            "name": "Business (all time)",
            "values": [
                ["net revenue", business["net_revenue"]],
                ["active customers", business["active_customers"]],
                ["NPS", business["nps"]],
            ],
        },
        {
            "name": "Channels (net revenue, all time)",
            "values": [[name, m["net_revenue"]] for name, m in channels[:4] if m["net_revenue"]]
            or [["events", business["events"]]],
        },
        {
            "name": "Lifecycle stages (customers in each now: end of "
            f"{total['customers_by_stage_at']})",
            "values": [
                [stage, total["customers_by_stage"][stage]]
                for stage in STAGES
                if stage in total["customers_by_stage"]
            ],
        },
        {
            "name": "Per customer (all time)",
            "values": [
                ["net revenue", _per(business["net_revenue"], customers)],
                ["orders", _per(business["purchases"], customers)],
                ["AOV", business["average_order_value"]],
                ["open rate", business["open_rate"]],
                ["click rate", business["click_rate"]],
            ],
        },
    ]
