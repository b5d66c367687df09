"""engine.arns: every source's way of naming a resource joins on one ARN."""

from engine.arns import (
    arn_from_billing_id,
    build_arn,
    canonical_arn,
    kind_of_id,
    parse_arn,
    resource_kind,
    short_id,
)


def test_billing_ids_become_the_same_arn_as_cloudtrail_names():
    # CUR names EC2 by id and S3 by bucket name; CloudTrail by instanceId / bucketName.
    assert arn_from_billing_id("i-0abc", "us-east-1", "111111111111", "AmazonEC2") == build_arn(
        "ec2:instance", "i-0abc", "us-east-1", "111111111111") == "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"
    assert arn_from_billing_id("my-bucket", "us-east-1", "111111111111", "AmazonS3") == "arn:aws:s3:::my-bucket"
    assert arn_from_billing_id("orders", "eu-west-1", "1", "AmazonDynamoDB") == "arn:aws:dynamodb:eu-west-1:1:table/orders"
    assert arn_from_billing_id("", "us-east-1", "1", "AmazonEC2") is None
    assert arn_from_billing_id("  ", "us-east-1", "1", "tax") is None


def test_lambda_qualifiers_and_s3_objects_collapse_to_the_billable_resource():
    assert canonical_arn("arn:aws:lambda:us-east-1:1:function:fn:prod") == "arn:aws:lambda:us-east-1:1:function:fn"
    assert canonical_arn("arn:aws:s3:::bucket/key/part") == "arn:aws:s3:::bucket"
    assert build_arn("lambda:function", "arn:aws:lambda:us-east-1:1:function:fn:7") == "arn:aws:lambda:us-east-1:1:function:fn"


def test_kind_and_short_id():
    cases = {
        "arn:aws:ec2:us-east-1:1:instance/i-1": ("ec2:instance", "i-1"),
        "arn:aws:rds:us-east-1:1:db:orders-db": ("rds:db", "orders-db"),
        "arn:aws:lambda:us-east-1:1:function:settle": ("lambda:function", "settle"),
        "arn:aws:s3:::logs": ("s3:bucket", "logs"),
        "arn:aws:dynamodb:us-east-1:1:table/ledger": ("dynamodb:table", "ledger"),
        "arn:aws:sqs:us-east-1:1:jobs": ("sqs:queue", "jobs"),
        "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/50dc6c": ("elasticloadbalancing:loadbalancer", "web"),
    }
    for arn, (kind, sid) in cases.items():
        assert resource_kind(arn) == kind
        assert short_id(arn) == sid
    assert parse_arn("not-an-arn") is None
    assert resource_kind("garbage") == "unknown"


def test_id_prefixes():
    assert kind_of_id("vol-123") == "ec2:volume"
    assert kind_of_id("i-") is None
    assert kind_of_id("bucket") is None
