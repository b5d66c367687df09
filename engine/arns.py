"""One canonical key per resource: its ARN.

CloudTrail names a resource by id or name inside ``requestParameters``, CUR by an id (EC2, S3) or an
ARN (Lambda, RDS, DynamoDB), the tagging API by ARN, ENIs by attachment. Everything is turned into the
ARN here so the sources join; ``short_id`` gives back the id people recognise (``i-0abc``, a bucket name).
"""

from __future__ import annotations

from dataclasses import dataclass

# kind -> (service, ARN resource template, regional, has account)
_TEMPLATES: dict[str, tuple[str, str, bool, bool]] = {
    "ec2:instance": ("ec2", "instance/{}", True, True),
    "ec2:volume": ("ec2", "volume/{}", True, True),
    "ec2:snapshot": ("ec2", "snapshot/{}", True, True),
    "ec2:image": ("ec2", "image/{}", True, True),
    "ec2:security-group": ("ec2", "security-group/{}", True, True),
    "ec2:vpc": ("ec2", "vpc/{}", True, True),
    "ec2:subnet": ("ec2", "subnet/{}", True, True),
    "ec2:network-interface": ("ec2", "network-interface/{}", True, True),
    "ec2:natgateway": ("ec2", "natgateway/{}", True, True),
    "ec2:elastic-ip": ("ec2", "elastic-ip/{}", True, True),
    "rds:db": ("rds", "db:{}", True, True),
    "rds:cluster": ("rds", "cluster:{}", True, True),
    "lambda:function": ("lambda", "function:{}", True, True),
    "s3:bucket": ("s3", "{}", False, False),
    "dynamodb:table": ("dynamodb", "table/{}", True, True),
    "ecs:cluster": ("ecs", "cluster/{}", True, True),
    "ecs:service": ("ecs", "service/{}", True, True),
    "ecs:task-definition": ("ecs", "task-definition/{}", True, True),
    "elasticloadbalancing:loadbalancer": ("elasticloadbalancing", "loadbalancer/{}", True, True),
    "elasticloadbalancing:targetgroup": ("elasticloadbalancing", "targetgroup/{}", True, True),
    "sqs:queue": ("sqs", "{}", True, True),
    "sns:topic": ("sns", "{}", True, True),
    "kinesis:stream": ("kinesis", "stream/{}", True, True),
    "logs:log-group": ("logs", "log-group:{}", True, True),
    "elasticache:cluster": ("elasticache", "cluster:{}", True, True),
    "ecr:repository": ("ecr", "repository/{}", True, True),
    "eks:cluster": ("eks", "cluster/{}", True, True),
    "kms:key": ("kms", "key/{}", True, True),
    "secretsmanager:secret": ("secretsmanager", "secret:{}", True, True),
    "cloudfront:distribution": ("cloudfront", "distribution/{}", False, True),
}

# EC2-style id prefixes, as they appear in CUR line_item_resource_id and CloudTrail parameters.
_ID_PREFIX_KIND = {
    "i-": "ec2:instance",
    "vol-": "ec2:volume",
    "snap-": "ec2:snapshot",
    "ami-": "ec2:image",
    "sg-": "ec2:security-group",
    "vpc-": "ec2:vpc",
    "subnet-": "ec2:subnet",
    "eni-": "ec2:network-interface",
    "nat-": "ec2:natgateway",
    "eipalloc-": "ec2:elastic-ip",
}


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str  # everything after the account field

    @property
    def kind(self) -> str:
        return resource_kind(self)

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def parse_arn(arn: str) -> Arn | None:
    """Split an ARN; None when the text is not one."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or not parts[2]:
        return None
    return Arn(parts[1], parts[2], parts[3], parts[4], parts[5])


def resource_kind(arn: Arn | str) -> str:
    """``service:type`` of an ARN, e.g. ``ec2:instance``, ``lambda:function``, ``s3:bucket``."""
    a = parse_arn(arn) if isinstance(arn, str) else arn
    if a is None:
        return "unknown"
    if a.service == "s3":
        return "s3:object" if "/" in a.resource else "s3:bucket"
    if a.service in ("sqs", "sns"):
        return f"{a.service}:{'queue' if a.service == 'sqs' else 'topic'}"
    head = a.resource.split("/", 1)[0].split(":", 1)[0]
    if a.service == "rds" and head == "cluster":
        return "rds:cluster"
    return f"{a.service}:{head}" if head else a.service


def short_id(arn: str) -> str:
    """The name people use for the resource: ``i-0abc``, ``my-bucket``, ``orders-table``."""
    a = parse_arn(arn)
    if a is None:
        return arn
    res = a.resource
    if a.service == "lambda":
        # function:name[:version|alias]
        bits = res.split(":")
        return bits[1] if len(bits) > 1 else res
    if a.service == "elasticloadbalancing":
        # loadbalancer/app/name/id or loadbalancer/name
        bits = res.split("/")
        return bits[2] if len(bits) >= 4 else bits[-1]
    for sep in ("/", ":"):
        if sep in res:
            return res.split(sep)[-1] if a.service != "ecs" else res.split(sep, 1)[1]
    return res


def canonical_arn(arn: str) -> str:
    """Drop qualifiers that name the same billable resource (Lambda versions and aliases)."""
    a = parse_arn(arn)
    if a is None:
        return arn
    if a.service == "lambda":
        bits = a.resource.split(":")
        if len(bits) > 2 and bits[0] == "function":
            return str(Arn(a.partition, a.service, a.region, a.account, ":".join(bits[:2])))
    if a.service == "s3" and "/" in a.resource:  # an object: its bucket is the resource
        return f"arn:{a.partition}:s3:::{a.resource.split('/', 1)[0]}"
    return arn


def build_arn(kind: str, name: str, region: str = "", account: str = "", partition: str = "aws") -> str:
    """ARN for a resource of ``kind`` named ``name`` (an id, name or already an ARN)."""
    if name.startswith("arn:"):
        return canonical_arn(name)
    service, template, regional, has_account = _TEMPLATES[kind]
    return (
        f"arn:{partition}:{service}:{region if regional else ''}:{account if has_account else ''}:"
        f"{template.format(name)}"
    )


def kind_of_id(raw: str) -> str | None:
    """Kind implied by an EC2-style id prefix (``i-``, ``vol-``…), else None."""
    for prefix, kind in _ID_PREFIX_KIND.items():
        if raw.startswith(prefix) and len(raw) > len(prefix):
            return kind
    return None


# CUR product codes whose line_item_resource_id is a bare name.
_PRODUCT_NAME_KIND = {
    "amazons3": "s3:bucket",
    "s3": "s3:bucket",
    "awslambda": "lambda:function",
    "lambda": "lambda:function",
    "amazondynamodb": "dynamodb:table",
    "dynamodb": "dynamodb:table",
    "amazonrds": "rds:db",
    "rds": "rds:db",
    "amazonsqs": "sqs:queue",
    "awsqueueservice": "sqs:queue",
    "amazonsns": "sns:topic",
}


def arn_from_billing_id(raw: str, region: str = "", account: str = "", product: str = "") -> str | None:
    """ARN for a billing line item's resource id; None when the line item names no resource."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if raw.startswith("arn:"):
        return canonical_arn(raw)
    kind = kind_of_id(raw)
    if kind is None:
        kind = _PRODUCT_NAME_KIND.get(product.lower().replace(" ", "").replace("-", ""))
    if kind is None:
        # Unknown service with a bare id: keep it addressable without pretending to know its type.
        return f"arn:aws:{product.lower() or 'unknown'}:{region}:{account}:{raw}"
    return build_arn(kind, raw, region, account)
