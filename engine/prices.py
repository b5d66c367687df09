"""A small static on-demand price table (us-east-1, Linux, USD per hour) of common EC2 and RDS types.

The early warning fires on a CloudTrail launch, before any billing data exists, so it needs a list
price without calling the Pricing API (the engine is pure, and the watch must work offline). Only the
order of magnitude matters here: "this launch costs about $32/h" is what pages someone. Unknown types
return None and never early-warn; their first cost hour is judged by the cold-start rule instead.
RDS prices are single-AZ MySQL/PostgreSQL on-demand.
"""

from __future__ import annotations

ON_DEMAND_USD_PER_HOUR: dict[str, float] = {
    # burstable
    "t2.micro": 0.0116, "t2.small": 0.023, "t2.medium": 0.0464, "t2.large": 0.0928, "t2.xlarge": 0.1856,
    "t2.2xlarge": 0.3712,
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416, "t3.large": 0.0832,
    "t3.xlarge": 0.1664, "t3.2xlarge": 0.3328,
    "t3a.micro": 0.0094, "t3a.small": 0.0188, "t3a.medium": 0.0376, "t3a.large": 0.0752, "t3a.xlarge": 0.1504,
    "t3a.2xlarge": 0.3008,
    "t4g.micro": 0.0084, "t4g.small": 0.0168, "t4g.medium": 0.0336, "t4g.large": 0.0672, "t4g.xlarge": 0.1344,
    "t4g.2xlarge": 0.2688,
    # general purpose
    "m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m5.4xlarge": 0.768, "m5.8xlarge": 1.536,
    "m5.12xlarge": 2.304, "m5.16xlarge": 3.072, "m5.24xlarge": 4.608, "m5.metal": 4.608,
    "m6i.large": 0.096, "m6i.xlarge": 0.192, "m6i.2xlarge": 0.384, "m6i.4xlarge": 0.768, "m6i.8xlarge": 1.536,
    "m6i.12xlarge": 2.304, "m6i.16xlarge": 3.072, "m6i.24xlarge": 4.608, "m6i.32xlarge": 6.144,
    "m6g.large": 0.077, "m6g.xlarge": 0.154, "m6g.2xlarge": 0.308, "m6g.4xlarge": 0.616,
    "m7i.large": 0.1008, "m7i.xlarge": 0.2016, "m7i.2xlarge": 0.4032, "m7i.4xlarge": 0.8064,
    "m7g.large": 0.0816, "m7g.xlarge": 0.1632, "m7g.2xlarge": 0.3264,
    # compute optimised
    "c5.large": 0.085, "c5.xlarge": 0.17, "c5.2xlarge": 0.34, "c5.4xlarge": 0.68, "c5.9xlarge": 1.53,
    "c5.12xlarge": 2.04, "c5.18xlarge": 3.06, "c5.24xlarge": 4.08,
    "c6i.large": 0.085, "c6i.xlarge": 0.17, "c6i.2xlarge": 0.34, "c6i.4xlarge": 0.68, "c6i.8xlarge": 1.36,
    "c6i.16xlarge": 2.72, "c6i.32xlarge": 5.44,
    "c6g.large": 0.068, "c6g.xlarge": 0.136, "c6g.2xlarge": 0.272, "c6g.4xlarge": 0.544,
    "c7g.large": 0.0725, "c7g.xlarge": 0.145, "c7g.2xlarge": 0.29,
    # memory optimised
    "r5.large": 0.126, "r5.xlarge": 0.252, "r5.2xlarge": 0.504, "r5.4xlarge": 1.008, "r5.8xlarge": 2.016,
    "r5.12xlarge": 3.024, "r5.16xlarge": 4.032, "r5.24xlarge": 6.048,
    "r6i.large": 0.126, "r6i.xlarge": 0.252, "r6i.2xlarge": 0.504, "r6i.4xlarge": 1.008, "r6i.8xlarge": 2.016,
    "r6i.16xlarge": 4.032, "r6i.32xlarge": 8.064,
    "r6g.large": 0.1008, "r6g.xlarge": 0.2016, "r6g.2xlarge": 0.4032, "r6g.4xlarge": 0.8064,
    "x1e.xlarge": 0.834, "x1.16xlarge": 6.669, "x1.32xlarge": 13.338, "x2idn.32xlarge": 13.338,
    "u-6tb1.metal": 43.68,
    # storage optimised
    "i3.large": 0.156, "i3.xlarge": 0.312, "i3.2xlarge": 0.624, "i3.4xlarge": 1.248, "i3.8xlarge": 2.496,
    "i3.16xlarge": 4.992,
    # accelerated
    "p2.xlarge": 0.90, "p2.8xlarge": 7.20, "p2.16xlarge": 14.40,
    "p3.2xlarge": 3.06, "p3.8xlarge": 12.24, "p3.16xlarge": 24.48, "p3dn.24xlarge": 31.212,
    "p4d.24xlarge": 32.7726, "p4de.24xlarge": 40.966, "p5.48xlarge": 98.32,
    "g4dn.xlarge": 0.526, "g4dn.2xlarge": 0.752, "g4dn.4xlarge": 1.204, "g4dn.8xlarge": 2.176,
    "g4dn.12xlarge": 3.912, "g4dn.16xlarge": 4.352, "g4dn.metal": 7.824,
    "g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672,
    "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
    "g6.xlarge": 0.8048, "g6.12xlarge": 4.6016, "g6.48xlarge": 13.3504,
    "inf2.xlarge": 0.7582, "inf2.48xlarge": 12.9813, "trn1.32xlarge": 21.50,
    # RDS (single-AZ, MySQL / PostgreSQL)
    "db.t3.micro": 0.017, "db.t3.small": 0.034, "db.t3.medium": 0.068, "db.t3.large": 0.136,
    "db.t3.xlarge": 0.272, "db.t3.2xlarge": 0.544,
    "db.t4g.micro": 0.016, "db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.t4g.large": 0.129,
    "db.m5.large": 0.171, "db.m5.xlarge": 0.342, "db.m5.2xlarge": 0.684, "db.m5.4xlarge": 1.368,
    "db.m5.8xlarge": 2.736, "db.m5.12xlarge": 4.104, "db.m5.16xlarge": 5.472, "db.m5.24xlarge": 8.208,
    "db.m6i.large": 0.171, "db.m6i.xlarge": 0.342, "db.m6i.2xlarge": 0.684, "db.m6i.4xlarge": 1.368,
    "db.m6g.large": 0.152, "db.m6g.xlarge": 0.304, "db.m6g.2xlarge": 0.608,
    "db.r5.large": 0.25, "db.r5.xlarge": 0.50, "db.r5.2xlarge": 1.00, "db.r5.4xlarge": 2.00,
    "db.r5.8xlarge": 4.00, "db.r5.12xlarge": 6.00, "db.r5.16xlarge": 8.00, "db.r5.24xlarge": 12.00,
    "db.r6i.large": 0.25, "db.r6i.xlarge": 0.50, "db.r6i.2xlarge": 1.00, "db.r6i.4xlarge": 2.00,
    "db.r6i.8xlarge": 4.00, "db.r6i.16xlarge": 8.00, "db.r6i.32xlarge": 16.00,
    "db.r6g.large": 0.225, "db.r6g.xlarge": 0.45, "db.r6g.2xlarge": 0.899, "db.r6g.4xlarge": 1.798,
    "db.x2g.large": 0.334, "db.x2g.16xlarge": 10.688,
}


def normalize_type(instance_type: str | None) -> str | None:
    """``"BoxUsage:m5.large"`` / ``"USE1-InstanceUsage:db.r5.large"`` / ``" M5.Large "`` -> the bare type."""
    if not instance_type:
        return None
    t = instance_type.strip().lower()
    if ":" in t:
        t = t.rsplit(":", 1)[1]
    return t or None


def hourly_price(instance_type: str | None) -> float | None:
    """List price in $/h of an EC2 instance type or RDS instance class; None when not in the table."""
    t = normalize_type(instance_type)
    return ON_DEMAND_USD_PER_HOUR.get(t) if t else None
