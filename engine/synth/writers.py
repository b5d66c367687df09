"""Render the synthetic organisation into the clouds' own export formats.

Each writer produces exactly what the real export looks like (CloudTrail S3 delivery files, CUR 2.0
CSV, ``get-resources``, ``get-account-authorization-details``, ``describe-network-interfaces``, flow
logs v2), so the readers under test never see anything a real account would not give them.

CloudTrail is the bulk (tens of millions of records), so it is built from byte templates: a record is
the join of pre-rendered pieces — the principal's identity, the hour, the event's head, the request
and response bodies filled from the resource's fields with one ``%`` format, and two random ids —
never a ``json.dumps`` per record.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from engine.arns import resource_kind, short_id
from engine.synth.org import (
    ACTIVATED_TAG_KEY,
    CATEGORIES,
    CONFIG_SERVICE,
    GITHUB_ORG,
    REGIONS,
    RTYPES,
    UNOWNED,
    Org,
    Principal,
    Resource,
    shapes,
)

GZIP_LEVEL = 1
TRUTH_COLUMNS = (
    "resource_id",
    "arn",
    "type",
    "team",
    "kind",
    "tagged",
    "tag_key",
    "tag_value",
    "tag_correct",
)
CUR_COLUMNS = (
    "bill_billing_period_start_date", "line_item_usage_account_id", "line_item_line_item_type",
    "line_item_usage_start_date", "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type",
    "line_item_operation", "line_item_resource_id", "line_item_usage_amount", "line_item_unblended_cost",
    "line_item_blended_cost", "product_region_code", "resource_tags",
)  # fmt: skip
CUR_ROWS_PER_FILE = 2_000_000
FLOW_HEADER = b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"


def gzip_open(path: Path) -> gzip.GzipFile:
    """A gzip writer with a fixed header (no name, mtime 0): same content, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=open(path, "wb"), mtime=0)


def _close(gz: gzip.GzipFile) -> None:
    f = gz.fileobj
    gz.close()
    if f is not None:
        f.close()


def iso(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ================================================================================================
# CloudTrail: the event catalogue

# (event name, event source, requestParameters, responseElements, readOnly, data event, resources[])
# requestParameters/responseElements are JSON text with %(field)s placeholders filled per resource.
# resources[]: "" none (most management events), "self" the resource, "s3obj" object + bucket.
_S3H = '"bucketName":"%(name)s","Host":"%(name)s.s3.%(region)s.amazonaws.com"'
_EC2_ITEMS = '{"instancesSet":{"items":[{"instanceId":"%(name)s"}]}'
_C7N = '"c7n_status","value":"compliant"'
_EVENTS: dict[str, list[tuple[str, str, str, str, bool, bool, str]]] = {
    "ec2": [
        ("DescribeInstances", "ec2", _EC2_ITEMS + ',"filterSet":{}}', "null", True, False, ""),
        ("DescribeInstanceStatus", "ec2", _EC2_ITEMS + ',"filterSet":{},"includeAllInstances":false}', "null", True, False, ""),
        ("DescribeInstanceAttribute", "ec2", '{"instanceId":"%(name)s","attribute":"userData"}', "null", True, False, ""),
        ("ModifyInstanceAttribute", "ec2", '{"instanceId":"%(name)s","disableApiTermination":{"value":true}}', '{"_return":true}', False, False, ""),
        ("CreateTags", "ec2", '{"resourcesSet":{"items":[{"resourceId":"%(name)s"}]},"tagSet":{"items":[{"key":"Name","value":"%(label)s"}]}}', '{"_return":true}', False, False, ""),
        ("StopInstances", "ec2", _EC2_ITEMS + ',"force":false}', _EC2_ITEMS + '}', False, False, ""),
        ("StartInstances", "ec2", _EC2_ITEMS + "}", '{"instancesSet":{"items":[{"instanceId":"%(name)s","currentState":{"code":0,"name":"pending"},"previousState":{"code":80,"name":"stopped"}}]}}', False, False, ""),
        ("GetConsoleOutput", "ec2", '{"instanceId":"%(name)s"}', "null", True, False, ""),
        ("StartSession", "ssm", '{"target":"%(name)s"}', '{"sessionId":"%(label)s-%(tok)s","tokenValue":"Value hidden due to security reasons.","streamUrl":"wss://ssmmessages.%(region)s.amazonaws.com/v1/data-channel/%(label)s-%(tok)s"}', False, False, ""),
        ("CreateImage", "ec2", '{"instanceId":"%(name)s","name":"backup-%(name)s","noReboot":true}', '{"imageId":"%(ami2)s"}', False, False, ""),
        ("RunInstances", "ec2", '{"instancesSet":{"items":[{"imageId":"%(image)s","minCount":1,"maxCount":1}]},"instanceType":"%(itype)s","blockDeviceMapping":{},"monitoring":{"enabled":false},"disableApiTermination":false,"subnetId":"%(subnet)s","clientToken":"%(tok)s"}',
         '{"reservationId":"r-%(hex)s","ownerId":"%(acct)s","groupSet":{},"instancesSet":{"items":[{"instanceId":"%(name)s","imageId":"%(image)s","instanceState":{"code":0,"name":"pending"},"privateIpAddress":"%(ip)s","instanceType":"%(itype)s","placement":{"availabilityZone":"%(az)s","tenancy":"default"},"subnetId":"%(subnet)s","vpcId":"%(vpc)s"}]}}', False, False, ""),
    ],
    "ebs": [
        ("DescribeVolumes", "ec2", '{"volumeSet":{"items":[{"volumeId":"%(name)s"}]},"filterSet":{}}', "null", True, False, ""),
        ("DescribeVolumeStatus", "ec2", '{"volumeSet":{"items":[{"volumeId":"%(name)s"}]},"filterSet":{}}', "null", True, False, ""),
        ("ModifyVolume", "ec2", '{"ModifyVolumeRequest":{"VolumeId":"%(name)s","Size":%(size)s}}', '{"ModifyVolumeResponse":{"volumeModification":{"volumeId":"%(name)s","modificationState":"modifying","targetSize":%(size)s}}}', False, False, ""),
        ("CreateSnapshot", "ec2", '{"volumeId":"%(name)s","description":"%(label)s backup"}', '{"snapshotId":"%(snap)s","volumeId":"%(name)s","status":"pending","volumeSize":%(size)s}', False, False, ""),
        ("CreateTags", "ec2", '{"resourcesSet":{"items":[{"resourceId":"%(name)s"}]},"tagSet":{"items":[{"key":"Name","value":"%(label)s"}]}}', '{"_return":true}', False, False, ""),
        ("AttachVolume", "ec2", '{"volumeId":"%(name)s","instanceId":"%(inst)s","device":"/dev/xvdf","deleteOnTermination":false}', '{"volumeId":"%(name)s","instanceId":"%(inst)s","device":"/dev/xvdf","status":"attaching"}', False, False, ""),
        ("CreateVolume", "ec2", '{"size":%(size)s,"zone":"%(az)s","volumeType":"gp3","encrypted":true}', '{"volumeId":"%(name)s","size":"%(size)s","zone":"%(az)s","status":"creating","volumeType":"gp3","encrypted":true}', False, False, ""),
    ],
    "rds": [
        ("DescribeDBInstances", "rds", '{"dBInstanceIdentifier":"%(name)s"}', "null", True, False, ""),
        ("DescribeDBLogFiles", "rds", '{"dBInstanceIdentifier":"%(name)s"}', "null", True, False, ""),
        ("DownloadDBLogFilePortion", "rds", '{"dBInstanceIdentifier":"%(name)s","logFileName":"error/postgresql.log","marker":"0"}', "null", True, False, ""),
        ("ModifyDBInstance", "rds", '{"dBInstanceIdentifier":"%(name)s","allocatedStorage":200,"applyImmediately":true}', '{"dBInstanceIdentifier":"%(name)s","dBInstanceClass":"%(dbclass)s","engine":"%(engine)s","dBInstanceStatus":"available","dBInstanceArn":"%(arn)s"}', False, False, ""),
        ("RebootDBInstance", "rds", '{"dBInstanceIdentifier":"%(name)s"}', '{"dBInstanceIdentifier":"%(name)s","dBInstanceStatus":"rebooting","dBInstanceArn":"%(arn)s"}', False, False, ""),
        ("CreateDBSnapshot", "rds", '{"dBSnapshotIdentifier":"%(name)s-manual","dBInstanceIdentifier":"%(name)s"}', '{"dBSnapshotIdentifier":"%(name)s-manual","dBInstanceIdentifier":"%(name)s","status":"creating","engine":"%(engine)s"}', False, False, ""),
        ("AddTagsToResource", "rds", '{"resourceName":"%(arn)s","tags":[{"key":' + _C7N + "}]}", "null", False, False, ""),
        ("ListTagsForResource", "rds", '{"resourceName":"%(arn)s"}', "null", True, False, ""),
        ("CreateDBInstance", "rds", '{"dBInstanceIdentifier":"%(name)s","dBInstanceClass":"%(dbclass)s","engine":"%(engine)s","allocatedStorage":100,"masterUsername":"admin","multiAZ":false}',
         '{"dBInstanceIdentifier":"%(name)s","dBInstanceClass":"%(dbclass)s","engine":"%(engine)s","dBInstanceStatus":"creating","dBInstanceArn":"%(arn)s","dbiResourceId":"db-%(tok)s"}', False, False, ""),
    ],
    "lambda": [
        ("Invoke", "lambda", '{"functionName":"%(arn)s","invocationType":"RequestResponse","logType":"None"}', "null", False, True, "self"),
        ("GetFunction20150331v2", "lambda", '{"functionName":"%(name)s"}', "null", True, False, ""),
        ("GetFunctionConfiguration20150331v2", "lambda", '{"functionName":"%(name)s"}', "null", True, False, ""),
        ("UpdateFunctionCode20150331v2", "lambda", '{"functionName":"%(name)s","publish":true,"dryRun":false}', '{"functionName":"%(name)s","functionArn":"%(arn)s","runtime":"%(runtime)s","role":"%(role)s","handler":"index.handler","memorySize":%(memory)s,"version":"$LATEST","state":"Active"}', False, False, ""),
        ("UpdateFunctionConfiguration20150331v2", "lambda", '{"functionName":"%(name)s","memorySize":%(memory)s,"timeout":30}', '{"functionName":"%(name)s","functionArn":"%(arn)s","memorySize":%(memory)s,"role":"%(role)s"}', False, False, ""),
        ("ListTags20170331", "lambda", '{"resource":"%(arn)s"}', "null", True, False, ""),
        ("TagResource20170331v2", "lambda", '{"resource":"%(arn)s","tags":{"c7n_status":"compliant"}}', "null", False, False, ""),
        ("AddPermission20150331v2", "lambda", '{"functionName":"%(name)s","statementId":"sns-invoke","action":"lambda:InvokeFunction","principal":"sns.amazonaws.com"}', "null", False, False, ""),
        ("CreateFunction20150331", "lambda", '{"functionName":"%(name)s","runtime":"%(runtime)s","role":"%(role)s","handler":"index.handler","memorySize":%(memory)s,"timeout":30,"publish":true}', '{"functionName":"%(name)s","functionArn":"%(arn)s","runtime":"%(runtime)s","role":"%(role)s","state":"Pending","version":"1"}', False, False, ""),
    ],
    "s3": [
        ("GetObject", "s3", "{" + _S3H + ',"key":"%(key)s"}', "null", True, True, "s3obj"),
        ("PutObject", "s3", "{" + _S3H + ',"key":"%(key)s"}', "null", False, True, "s3obj"),
        ("HeadObject", "s3", "{" + _S3H + ',"key":"%(key)s"}', "null", True, True, "s3obj"),
        ("DeleteObject", "s3", "{" + _S3H + ',"key":"%(key)s"}', "null", False, True, "s3obj"),
        ("ListObjects", "s3", "{" + _S3H + ',"prefix":"%(prefix)s","list-type":"2"}', "null", True, True, "self"),
        ("GetBucketPolicy", "s3", "{" + _S3H + ',"policy":""}', "null", True, False, "self"),
        ("PutBucketPolicy", "s3", "{" + _S3H + ',"bucketPolicy":{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["%(arn)s","%(arn)s/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]},"policy":""}', "null", False, False, "self"),
        ("GetBucketAcl", "s3", "{" + _S3H + ',"acl":""}', "null", True, False, "self"),
        ("GetBucketEncryption", "s3", "{" + _S3H + ',"encryption":""}', "null", True, False, "self"),
        ("GetBucketVersioning", "s3", "{" + _S3H + ',"versioning":""}', "null", True, False, "self"),
        ("GetBucketLocation", "s3", "{" + _S3H + ',"location":""}', "null", True, False, "self"),
        ("PutBucketTagging", "s3", "{" + _S3H + ',"tagging":""}', "null", False, False, "self"),
        ("CreateBucket", "s3", '{"bucketName":"%(name)s","Host":"s3.%(region)s.amazonaws.com","CreateBucketConfiguration":{"LocationConstraint":"%(region)s"}}', "null", False, False, "self"),
    ],
    "dynamodb": [
        ("GetItem", "dynamodb", '{"tableName":"%(name)s","key":{"pk":"HIDDEN_DUE_TO_SECURITY_REASONS"},"consistentRead":false}', "null", True, True, "self"),
        ("PutItem", "dynamodb", '{"tableName":"%(name)s","key":{"pk":"HIDDEN_DUE_TO_SECURITY_REASONS"},"item":["pk","sk","payload"]}', "null", False, True, "self"),
        ("Query", "dynamodb", '{"tableName":"%(name)s","keyConditionExpression":"pk = :v","limit":100}', "null", True, True, "self"),
        ("UpdateItem", "dynamodb", '{"tableName":"%(name)s","key":{"pk":"HIDDEN_DUE_TO_SECURITY_REASONS"},"updateExpression":"SET #s = :s"}', "null", False, True, "self"),
        ("DescribeTable", "dynamodb", '{"tableName":"%(name)s"}', "null", True, False, ""),
        ("UpdateTable", "dynamodb", '{"tableName":"%(name)s","billingMode":"PAY_PER_REQUEST"}', '{"tableDescription":{"tableName":"%(name)s","tableArn":"%(arn)s","tableStatus":"UPDATING"}}', False, False, ""),
        ("UpdateTimeToLive", "dynamodb", '{"tableName":"%(name)s","timeToLiveSpecification":{"enabled":true,"attributeName":"ttl"}}', '{"timeToLiveSpecification":{"enabled":true,"attributeName":"ttl"}}', False, False, ""),
        ("CreateBackup", "dynamodb", '{"tableName":"%(name)s","backupName":"%(name)s-nightly"}', '{"backupDetails":{"backupArn":"%(arn)s/backup/01%(tok)s","backupName":"%(name)s-nightly","backupStatus":"CREATING"}}', False, False, ""),
        ("DescribeContinuousBackups", "dynamodb", '{"tableName":"%(name)s"}', "null", True, False, ""),
        ("ListTagsOfResource", "dynamodb", '{"resourceArn":"%(arn)s"}', "null", True, False, ""),
        ("TagResource", "dynamodb", '{"resourceArn":"%(arn)s","tags":[{"key":' + _C7N + "}]}", "null", False, False, ""),
        ("CreateTable", "dynamodb", '{"tableName":"%(name)s","attributeDefinitions":[{"attributeName":"pk","attributeType":"S"}],"keySchema":[{"attributeName":"pk","keyType":"HASH"}],"billingMode":"PAY_PER_REQUEST"}',
         '{"tableDescription":{"tableName":"%(name)s","tableArn":"%(arn)s","tableStatus":"CREATING","tableId":"%(uuid)s"}}', False, False, ""),
    ],
    "sqs": [
        ("SendMessage", "sqs", '{"queueUrl":"%(url)s","messageBody":"HIDDEN_DUE_TO_SECURITY_REASONS"}', "null", False, True, "self"),
        ("ReceiveMessage", "sqs", '{"queueUrl":"%(url)s","maxNumberOfMessages":10,"waitTimeSeconds":20}', "null", True, True, "self"),
        ("DeleteMessage", "sqs", '{"queueUrl":"%(url)s","receiptHandle":"HIDDEN_DUE_TO_SECURITY_REASONS"}', "null", False, True, "self"),
        ("GetQueueAttributes", "sqs", '{"queueUrl":"%(url)s","attributeNames":["All"]}', "null", True, False, ""),
        ("SetQueueAttributes", "sqs", '{"queueUrl":"%(url)s","attributes":{"VisibilityTimeout":"120"}}', "null", False, False, ""),
        ("ListQueueTags", "sqs", '{"queueUrl":"%(url)s"}', "null", True, False, ""),
        ("TagQueue", "sqs", '{"queueUrl":"%(url)s","tags":{"c7n_status":"compliant"}}', "null", False, False, ""),
        ("PurgeQueue", "sqs", '{"queueUrl":"%(url)s"}', "null", False, False, ""),
        ("CreateQueue", "sqs", '{"queueName":"%(name)s","attributes":{"VisibilityTimeout":"60"}}', '{"queueUrl":"%(url)s"}', False, False, ""),
    ],
    "sns": [
        ("Publish", "sns", '{"topicArn":"%(arn)s","message":"HIDDEN_DUE_TO_SECURITY_REASONS"}', "null", False, True, "self"),
        ("GetTopicAttributes", "sns", '{"topicArn":"%(arn)s"}', "null", True, False, ""),
        ("SetTopicAttributes", "sns", '{"topicArn":"%(arn)s","attributeName":"DisplayName","attributeValue":"%(name)s"}', "null", False, False, ""),
        ("Subscribe", "sns", '{"topicArn":"%(arn)s","protocol":"https","endpoint":"https://hooks.corp.example/%(name)s","returnSubscriptionArn":true}', '{"subscriptionArn":"%(arn)s:%(uuid)s"}', False, False, ""),
        ("ListSubscriptionsByTopic", "sns", '{"topicArn":"%(arn)s"}', "null", True, False, ""),
        ("ListTagsForResource", "sns", '{"resourceArn":"%(arn)s"}', "null", True, False, ""),
        ("TagResource", "sns", '{"resourceArn":"%(arn)s","tags":[{"key":' + _C7N + "}]}", "null", False, False, ""),
        ("CreateTopic", "sns", '{"name":"%(name)s"}', '{"topicArn":"%(arn)s"}', False, False, ""),
    ],
    "ecs": [
        ("DescribeServices", "ecs", '{"cluster":"%(cluster)s","services":["%(service)s"]}', "null", True, False, ""),
        ("ListTasks", "ecs", '{"cluster":"%(cluster)s","serviceName":"%(service)s","desiredStatus":"RUNNING"}', "null", True, False, ""),
        ("UpdateService", "ecs", '{"cluster":"%(cluster)s","service":"%(service)s","taskDefinition":"%(taskdef)s","forceNewDeployment":true}',
         '{"service":{"serviceArn":"%(arn)s","serviceName":"%(service)s","clusterArn":"arn:aws:ecs:%(region)s:%(acct)s:cluster/%(cluster)s","status":"ACTIVE","desiredCount":2,"taskDefinition":"arn:aws:ecs:%(region)s:%(acct)s:task-definition/%(taskdef)s"}}', False, False, ""),
        ("ListTagsForResource", "ecs", '{"resourceArn":"%(arn)s"}', "null", True, False, ""),
        ("TagResource", "ecs", '{"resourceArn":"%(arn)s","tags":[{"key":' + _C7N + "}]}", "null", False, False, ""),
        ("CreateService", "ecs", '{"cluster":"%(cluster)s","serviceName":"%(service)s","taskDefinition":"%(taskdef)s","desiredCount":2,"launchType":"FARGATE"}',
         '{"service":{"serviceArn":"%(arn)s","serviceName":"%(service)s","clusterArn":"arn:aws:ecs:%(region)s:%(acct)s:cluster/%(cluster)s","status":"ACTIVE","desiredCount":2}}', False, False, ""),
    ],
    "alb": [
        ("DescribeLoadBalancers", "elasticloadbalancing", '{"loadBalancerArns":["%(arn)s"]}', "null", True, False, ""),
        ("DescribeLoadBalancerAttributes", "elasticloadbalancing", '{"loadBalancerArn":"%(arn)s"}', "null", True, False, ""),
        ("DescribeListeners", "elasticloadbalancing", '{"loadBalancerArn":"%(arn)s"}', "null", True, False, ""),
        ("ModifyLoadBalancerAttributes", "elasticloadbalancing", '{"loadBalancerArn":"%(arn)s","attributes":[{"key":"idle_timeout.timeout_seconds","value":"120"}]}', '{"attributes":[{"key":"idle_timeout.timeout_seconds","value":"120"}]}', False, False, ""),
        ("SetSecurityGroups", "elasticloadbalancing", '{"loadBalancerArn":"%(arn)s","securityGroups":["%(sg)s"]}', '{"securityGroupIds":["%(sg)s"]}', False, False, ""),
        ("DescribeTags", "elasticloadbalancing", '{"resourceArns":["%(arn)s"]}', "null", True, False, ""),
        ("AddTags", "elasticloadbalancing", '{"resourceArns":["%(arn)s"],"tags":[{"key":' + _C7N + "}]}", "null", False, False, ""),
        ("CreateLoadBalancer", "elasticloadbalancing", '{"name":"%(label)s","subnets":["%(subnet)s","%(subnet2)s"],"securityGroups":["%(sg)s"],"scheme":"internal","type":"application","ipAddressType":"ipv4"}',
         '{"loadBalancers":[{"loadBalancerArn":"%(arn)s","dNSName":"internal-%(label)s-%(num)s.%(region)s.elb.amazonaws.com","loadBalancerName":"%(label)s","scheme":"internal","vpcId":"%(vpc)s","state":{"code":"provisioning"},"type":"application"}]}', False, False, ""),
    ],
}  # fmt: skip

# Per type and category: (event name, weight). A missing category falls back to "ro".
_CATS: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {
    "ec2": {
        "svc": (("DescribeInstances", 4), ("DescribeInstanceStatus", 2), ("CreateTags", 1), ("DescribeInstanceAttribute", 1)),
        "mgmt": (("ModifyInstanceAttribute", 2), ("StopInstances", 1), ("StartInstances", 1), ("CreateTags", 2),
                 ("DescribeInstances", 3), ("GetConsoleOutput", 1), ("StartSession", 2)),
        "ro": (("DescribeInstances", 3), ("DescribeInstanceStatus", 1), ("DescribeInstanceAttribute", 1)),
        "ci": (("DescribeInstances", 3), ("ModifyInstanceAttribute", 1), ("CreateTags", 1), ("DescribeInstanceAttribute", 1)),
        "deploy": (("ModifyInstanceAttribute", 1), ("CreateTags", 1)),
        "create": (("RunInstances", 1),),
        "custodian": (("DescribeInstances", 3), ("CreateTags", 1)),
        "backup": (("CreateImage", 1),),
        "audit": (("DescribeInstances", 2), ("DescribeInstanceAttribute", 1)),
        "vendor": (("DescribeInstances", 2), ("DescribeInstanceStatus", 1)),
    },
    "ebs": {
        "svc": (("DescribeVolumes", 3), ("DescribeVolumeStatus", 1)),
        "mgmt": (("ModifyVolume", 1), ("DescribeVolumes", 2), ("CreateSnapshot", 1), ("CreateTags", 1)),
        "ro": (("DescribeVolumes", 2), ("DescribeVolumeStatus", 1)),
        "ci": (("DescribeVolumes", 2), ("CreateTags", 1)),
        "deploy": (("CreateTags", 1), ("ModifyVolume", 1)),
        "create": (("CreateVolume", 1),),
        "attach": (("AttachVolume", 1),),
        "custodian": (("DescribeVolumes", 2), ("CreateTags", 1)),
        "backup": (("CreateSnapshot", 1),),
        "audit": (("DescribeVolumes", 2), ("DescribeVolumeStatus", 1)),
        "vendor": (("DescribeVolumes", 1),),
    },
    "rds": {
        "svc": (("DescribeDBInstances", 5), ("DescribeDBLogFiles", 1)),
        "mgmt": (("ModifyDBInstance", 2), ("DescribeDBInstances", 3), ("RebootDBInstance", .5), ("CreateDBSnapshot", 1),
                 ("DownloadDBLogFilePortion", 1)),
        "ro": (("DescribeDBInstances", 3), ("DescribeDBLogFiles", 1), ("ListTagsForResource", 1)),
        "ci": (("DescribeDBInstances", 3), ("ListTagsForResource", 1), ("ModifyDBInstance", 1)),
        "deploy": (("ModifyDBInstance", 1),),
        "create": (("CreateDBInstance", 1),),
        "custodian": (("DescribeDBInstances", 2), ("AddTagsToResource", 1), ("ListTagsForResource", 1)),
        "backup": (("CreateDBSnapshot", 1),),
        "audit": (("DescribeDBInstances", 2), ("ListTagsForResource", 1)),
        "vendor": (("DescribeDBInstances", 2), ("ListTagsForResource", 1)),
    },
    "lambda": {
        "svc": (("Invoke", 6), ("GetFunction20150331v2", 1)),
        "mgmt": (("UpdateFunctionConfiguration20150331v2", 1), ("GetFunction20150331v2", 2), ("Invoke", 2),
                 ("AddPermission20150331v2", .5), ("UpdateFunctionCode20150331v2", 1)),
        "ro": (("GetFunction20150331v2", 2), ("GetFunctionConfiguration20150331v2", 2), ("ListTags20170331", 1)),
        "ci": (("GetFunction20150331v2", 3), ("UpdateFunctionCode20150331v2", 1), ("UpdateFunctionConfiguration20150331v2", 1),
               ("ListTags20170331", 1)),
        "deploy": (("UpdateFunctionCode20150331v2", 3), ("UpdateFunctionConfiguration20150331v2", 1)),
        "create": (("CreateFunction20150331", 1),),
        "custodian": (("GetFunction20150331v2", 2), ("TagResource20170331v2", 1), ("ListTags20170331", 1)),
        "audit": (("GetFunction20150331v2", 2), ("GetFunctionConfiguration20150331v2", 1), ("ListTags20170331", 1)),
        "vendor": (("Invoke", 3), ("GetFunction20150331v2", 1)),
    },
    "s3": {
        "svc": (("GetObject", 5), ("PutObject", 4), ("HeadObject", 1), ("ListObjects", 2), ("DeleteObject", .5)),
        "mgmt": (("GetObject", 2), ("PutObject", 1), ("ListObjects", 2), ("PutBucketPolicy", .5), ("GetBucketPolicy", 1),
                 ("PutBucketTagging", .3)),
        "ro": (("ListObjects", 2), ("GetObject", 2), ("GetBucketPolicy", 1), ("GetBucketLocation", 1)),
        "ci": (("GetBucketPolicy", 2), ("GetBucketLocation", 1), ("PutBucketPolicy", .5), ("GetBucketVersioning", 1)),
        "deploy": (("PutObject", 2), ("PutBucketPolicy", 1)),
        "create": (("CreateBucket", 1),),
        "custodian": (("GetBucketEncryption", 2), ("GetBucketPolicy", 1), ("PutBucketTagging", .5)),
        "backup": (("GetBucketVersioning", 1), ("ListObjects", 1)),
        "audit": (("GetBucketAcl", 2), ("GetBucketPolicy", 1), ("GetBucketEncryption", 1), ("GetBucketVersioning", 1)),
        "vendor": (("PutObject", 4), ("GetObject", 1), ("ListObjects", 1)),
    },
    "dynamodb": {
        "svc": (("GetItem", 4), ("PutItem", 3), ("Query", 3), ("UpdateItem", 2)),
        "mgmt": (("DescribeTable", 2), ("UpdateTable", 1), ("Query", 1), ("GetItem", 1), ("UpdateTimeToLive", .3)),
        "ro": (("DescribeTable", 2), ("Query", 1), ("GetItem", 1)),
        "ci": (("DescribeTable", 3), ("DescribeContinuousBackups", 1), ("ListTagsOfResource", 1), ("UpdateTable", .5)),
        "deploy": (("UpdateTable", 1),),
        "create": (("CreateTable", 1),),
        "custodian": (("DescribeTable", 1), ("ListTagsOfResource", 1), ("TagResource", .5)),
        "backup": (("CreateBackup", 1),),
        "audit": (("DescribeTable", 2), ("DescribeContinuousBackups", 1), ("ListTagsOfResource", 1)),
        "vendor": (("PutItem", 2), ("GetItem", 1), ("DescribeTable", 1)),
    },
    "sqs": {
        "svc": (("SendMessage", 4), ("ReceiveMessage", 5), ("DeleteMessage", 3)),
        "mgmt": (("GetQueueAttributes", 2), ("SetQueueAttributes", 1), ("PurgeQueue", .2), ("ReceiveMessage", 1)),
        "ro": (("GetQueueAttributes", 2), ("ListQueueTags", 1)),
        "ci": (("GetQueueAttributes", 3), ("ListQueueTags", 1), ("SetQueueAttributes", .5)),
        "deploy": (("SetQueueAttributes", 1),),
        "create": (("CreateQueue", 1),),
        "custodian": (("GetQueueAttributes", 1), ("TagQueue", .5), ("ListQueueTags", 1)),
        "audit": (("GetQueueAttributes", 2), ("ListQueueTags", 1)),
        "vendor": (("SendMessage", 2), ("ReceiveMessage", 2), ("DeleteMessage", 1)),
    },
    "sns": {
        "svc": (("Publish", 6), ("GetTopicAttributes", 1)),
        "mgmt": (("SetTopicAttributes", 1), ("Subscribe", .5), ("GetTopicAttributes", 2), ("ListSubscriptionsByTopic", 1),
                 ("Publish", 1)),
        "ro": (("GetTopicAttributes", 2), ("ListSubscriptionsByTopic", 1)),
        "ci": (("GetTopicAttributes", 3), ("ListTagsForResource", 1), ("SetTopicAttributes", .5)),
        "deploy": (("SetTopicAttributes", 1),),
        "create": (("CreateTopic", 1),),
        "custodian": (("GetTopicAttributes", 1), ("TagResource", .5), ("ListTagsForResource", 1)),
        "audit": (("GetTopicAttributes", 2), ("ListTagsForResource", 1)),
        "vendor": (("Publish", 3), ("GetTopicAttributes", 1)),
    },
    "ecs": {
        "svc": (("DescribeServices", 3), ("ListTasks", 2)),
        "mgmt": (("UpdateService", 1), ("DescribeServices", 3), ("ListTasks", 1)),
        "ro": (("DescribeServices", 2), ("ListTasks", 1)),
        "ci": (("DescribeServices", 3), ("ListTagsForResource", 1)),
        "deploy": (("UpdateService", 3),),
        "create": (("CreateService", 1),),
        "custodian": (("DescribeServices", 1), ("TagResource", .5), ("ListTagsForResource", 1)),
        "audit": (("DescribeServices", 2), ("ListTagsForResource", 1)),
        "vendor": (("DescribeServices", 2), ("ListTasks", 1)),
    },
    "alb": {
        "svc": (("DescribeLoadBalancers", 2), ("DescribeListeners", 1), ("DescribeLoadBalancerAttributes", 1)),
        "mgmt": (("ModifyLoadBalancerAttributes", 1), ("DescribeLoadBalancers", 2), ("SetSecurityGroups", .3),
                 ("DescribeListeners", 1)),
        "ro": (("DescribeLoadBalancers", 2), ("DescribeListeners", 1), ("DescribeTags", 1)),
        "ci": (("DescribeLoadBalancers", 2), ("DescribeLoadBalancerAttributes", 1), ("DescribeTags", 1), ("DescribeListeners", 1)),
        "deploy": (("ModifyLoadBalancerAttributes", 1),),
        "create": (("CreateLoadBalancer", 1),),
        "custodian": (("DescribeLoadBalancers", 1), ("AddTags", .5), ("DescribeTags", 1)),
        "audit": (("DescribeLoadBalancers", 2), ("DescribeLoadBalancerAttributes", 1)),
        "vendor": (("DescribeLoadBalancers", 2), ("DescribeTags", 1)),
    },
}  # fmt: skip
_CFN_TYPES = {
    "ec2": "AWS::EC2::Instance", "ebs": "AWS::EC2::Volume", "rds": "AWS::RDS::DBInstance",
    "lambda": "AWS::Lambda::Function", "s3": "AWS::S3::Bucket", "dynamodb": "AWS::DynamoDB::Table",
    "sqs": "AWS::SQS::Queue", "sns": "AWS::SNS::Topic", "ecs": "AWS::ECS::Service",
    "alb": "AWS::ElasticLoadBalancingV2::LoadBalancer",
}  # fmt: skip
_ACCESS_DENIED = (
    b'"errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this operation '
    b'because no identity-based policy allows the action",'
)


@dataclass(slots=True)
class Catalogue:
    """Byte templates for every (resource type, event) and the category draw tables.

    ``tj`` indexes a (type, event); ``cat_key = type_index * len(CATEGORIES) + category`` selects the
    slice ``cat_lo[k]:cat_hi[k]`` of ``cat_tj``/``cat_cum`` that an event of that category draws from.
    """

    names: list[tuple[str, str]]  # tj -> (rtype, event name)
    head: list[bytes]  # tj * len(REGIONS) + region -> eventSource/eventName/awsRegion piece
    body: list[bytes]
    errbody: list[bytes]
    tail: list[bytes]
    cat_tj: np.ndarray
    cat_cum: np.ndarray
    cat_lo: np.ndarray
    cat_hi: np.ndarray
    nreg: int


def build_catalogue() -> Catalogue:
    names: list[tuple[str, str]] = []
    head: list[bytes] = []
    body: list[bytes] = []
    errbody: list[bytes] = []
    tail: list[bytes] = []
    index: dict[tuple[str, str], int] = {}
    for rtype in RTYPES:
        for name, src, req, resp, ro, data, res in _EVENTS[rtype]:
            index[(rtype, name)] = len(names)
            names.append((rtype, name))
            for region in REGIONS:
                head.append(
                    f'Z","eventSource":"{src}.amazonaws.com","eventName":"{name}","awsRegion":"{region}",'.encode()
                )
            req_b = b'"requestParameters":' + req.encode()
            body.append(req_b + b',"responseElements":' + resp.encode() + b',"requestID":"')
            errbody.append(_ACCESS_DENIED + req_b + b',"responseElements":null,"requestID":"')
            if res == "self":
                resources = (
                    f'"resources":[{{"accountId":"%(acct)s","type":"{_CFN_TYPES[rtype]}","ARN":"%(arn)s"}}],'
                )
            elif res == "s3obj":
                resources = ('"resources":[{"type":"AWS::S3::Object","ARN":"%(arn)s/%(key)s"},'
                             '{"accountId":"%(acct)s","type":"AWS::S3::Bucket","ARN":"%(arn)s"}],')  # fmt: skip
            else:
                resources = ""
            tail.append(
                (
                    f'","readOnly":{"true" if ro else "false"},{resources}"eventType":"AwsApiCall",'
                    f'"managementEvent":{"false" if data else "true"},"recipientAccountId":"%(acct)s",'
                    f'"eventCategory":"{"Data" if data else "Management"}"}}'
                ).encode()
            )
    ncat = len(CATEGORIES)
    lo = np.zeros(len(RTYPES) * ncat, np.int64)
    hi = np.zeros(len(RTYPES) * ncat, np.int64)
    tjs: list[int] = []
    cum: list[float] = []
    total = 0.0
    for ti, rtype in enumerate(RTYPES):
        for ci, cat in enumerate(CATEGORIES):
            entries = _CATS[rtype].get(cat) or _CATS[rtype]["ro"]
            k = ti * ncat + ci
            lo[k] = len(tjs)
            for name, w in entries:
                tjs.append(index[(rtype, name)])
                total += w
                cum.append(total)
            hi[k] = len(tjs)
    return Catalogue(
        names, head, body, errbody, tail, np.array(tjs, np.int64), np.array(cum), lo, hi, len(REGIONS)
    )


# ================================================================================================
# CloudTrail: principals and resources as template pieces

_AGENTS = {
    "svc-ec2": "aws-sdk-java/2.25.11 Linux/5.10.215-203.850.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS "
               "Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
    "svc-ecs": "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64 exec-env/AWS_ECS_FARGATE",
    "svc-lambda": "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.214-225.855.amzn2.x86_64 md/arch#x86_64 "
                  "lang/python#3.12.3 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.84",
    "console": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/124.0.0.0 Safari/537.36",
    "cli": "aws-cli/2.15.40 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 "
           "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off",
    "sdk-py": "Boto3/1.34.90 md/Botocore#1.34.90 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.12.2 "
              "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.90",
    "terraform": "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.46.0 "
                 "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.1",
    "ci": "aws-cli/2.15.40 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0-1018-azure md/arch#x86_64 lang/python#3.11.8 "
          "md/pyimpl#CPython exec-env/GitHubActions cfg/retry-mode#standard",
    "ci_cfn": "cloudformation.amazonaws.com",
    "custodian": "CloudCustodian(c7n)/0.9.36 Boto3/1.34.0 Python/3.11.6 Linux/5.10.199 Botocore/1.34.0",
    "backup": "backup.amazonaws.com",
    "scanner": "aws-sdk-java/1.12.600 Linux/5.10.199 OpenJDK_64-Bit_Server_VM/11.0.21 java/11.0.21 securityhub-scanner/2.4",
    "config": "config.amazonaws.com",
    "vendor": "Datadog-AWS-Integration/1.0 aws-sdk-go/1.44.300 (go1.21.5; linux; amd64)",
}  # fmt: skip
_INVOKED_BY = {"ci_cfn": "cloudformation.amazonaws.com", "backup": "backup.amazonaws.com"}


def identity_json(p: Principal, created: str) -> str:
    """The ``userIdentity`` object CloudTrail writes for this principal."""
    if p.kind == "config":
        return f'{{"type":"AWSService","invokedBy":"{CONFIG_SERVICE}"}}'
    if p.kind == "iam_user":
        return (
            f'{{"type":"IAMUser","principalId":"{p.role_id}","arn":"arn:aws:iam::{p.account}:user/{p.name}",'
            f'"accountId":"{p.account}","accessKeyId":"{p.key_id}","userName":"{p.name}"}}'
        )
    role_arn = f"arn:aws:iam::{p.account}:role{p.path}{p.name}"
    web = (
        f'{{"federatedProvider":"arn:aws:iam::{p.account}:oidc-provider/token.actions.githubusercontent.com",'
        '"attributes":{}}'
        if p.kind in ("ci", "ci_cfn")
        else "{}"
    )
    mfa = "true" if p.kind in ("sso_power", "sso_ro") else "false"
    inv = _INVOKED_BY.get(p.kind)
    return (
        f'{{"type":"AssumedRole","principalId":"{p.role_id}:{p.session}",'
        f'"arn":"arn:aws:sts::{p.account}:assumed-role/{p.name}/{p.session}","accountId":"{p.account}",'
        f'"accessKeyId":"{p.key_id}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"{p.role_id}",'
        f'"arn":"{role_arn}","accountId":"{p.account}","userName":"{p.name}"}},"webIdFederationData":{web},'
        f'"attributes":{{"creationDate":"{created}","mfaAuthenticated":"{mfa}"}}}}'
        + (f',"invokedBy":"{inv}"' if inv else "")
        + "}"
    )


def principal_pieces(org: Org) -> tuple[list[bytes], list[bytes]]:
    """Per principal: the record's head up to ``eventTime`` and its sourceIPAddress/userAgent piece."""
    created = iso(org.params.epoch - 3600)
    heads, mids = [], []
    for p in org.principals:
        heads.append(
            b'{"eventVersion":"1.09","userIdentity":' + identity_json(p, created).encode() + b',"eventTime":"'
        )
        agent = _AGENTS.get(p.agent, _AGENTS["svc-ec2"])
        mids.append(f'"sourceIPAddress":"{p.ip}","userAgent":"{agent}",'.encode())
    return heads, mids


def resource_fields(org: Org) -> list[dict[bytes, bytes]]:
    """Per resource: the values its event templates are filled with (bytes keys for ``bytes % dict``)."""
    exec_role: dict[str, str] = {}
    for rd in org.roles.values():
        if rd.kind == "service" and rd.team and (rd.runtime == "lambda" or rd.team not in exec_role):
            exec_role[rd.team] = f"arn:aws:iam::{rd.account}:role/{rd.name}"
    out = []
    for r in org.resources:
        h = hashlib.blake2b(r.arn.encode(), digest_size=16).hexdigest()
        a = r.attrs
        team = r.prev_team or (r.team if r.team != UNOWNED else r.home)
        f = {
            "name": r.name, "arn": r.arn, "acct": r.account, "region": r.region, "label": a.get("Name", r.name),
            "tok": h[:20].upper(), "hex": h[:17], "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
            "subnet": r.subnet_id, "vpc": r.vpc_id, "az": r.az or r.region + "a",
            "ip": r.enis[0].ip if r.enis else "", "sg": r.enis[0].sg if r.enis else "",
            "itype": a.get("itype", ""), "image": a.get("image", ""), "ami2": "ami-" + h[:17],
            "size": a.get("size", "0"), "snap": "snap-" + h[-17:], "inst": a.get("instance", ""),
            "dbclass": a.get("dbclass", ""), "engine": a.get("engine", ""), "runtime": a.get("runtime", ""),
            "memory": a.get("memory", "0"), "role": exec_role.get(team, ""),
            "key": f"{a.get('Name', 'data')}/2026/part-{int(h[:4], 16) % 1000:05d}.parquet",
            "prefix": "exports/", "url": a.get("url", ""), "cluster": a.get("cluster", ""),
            "service": a.get("service", ""), "taskdef": a.get("taskdef", ""), "num": str(int(h[:8], 16)),
            "subnet2": r.enis[1].subnet_id if len(r.enis) > 1 else r.subnet_id,
        }  # fmt: skip
        if r.rtype == "alb":
            f["label"] = a["lbname"]
        out.append({k.encode(): v.encode() for k, v in f.items()})
    return out


MMSS = [b"%02d:%02d" % (m, s) for m in range(60) for s in range(60)]
_MID = b'","eventID":"'


def render_records(cat: Catalogue, heads: list[bytes], mids: list[bytes], fields: list[dict[bytes, bytes]],
                   hour_prefix: bytes, pid: list[int], tj: list[int], ehi: list[int], res: list[int],
                   sec: list[int], err: list[bool], eid: list[bytes], rid: list[bytes]) -> bytes:  # fmt: skip
    """The records of one file, joined with commas (the caller wraps them in ``{"Records":[...]}``)."""
    head, body, errbody, tail = cat.head, cat.body, cat.errbody, cat.tail
    out: list[bytes] = []
    ap = out.append
    join = b"".join
    mid = _MID
    for p, j, e, r, s, x, ei, ri in zip(pid, tj, ehi, res, sec, err, eid, rid, strict=True):
        f = fields[r]
        ap(join((heads[p], hour_prefix, MMSS[s], head[e], mids[p], (errbody if x else body)[j] % f, ri, mid, ei,
                 tail[j] % f)))  # fmt: skip
    return b",".join(out)


def cloudtrail_path(bundle: Path, account: str, region: str, when: datetime, suffix: str) -> Path:
    d = when.strftime("%Y/%m/%d")
    stamp = when.strftime("%Y%m%dT%H%MZ")
    return (bundle / "cloudtrail" / "AWSLogs" / account / "CloudTrail" / region / d
            / f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz")  # fmt: skip


def write_cloudtrail_file(path: Path, chunks: list[bytes]) -> int:
    gz = gzip_open(path)
    try:
        gz.write(b'{"Records":[')
        for i, c in enumerate(chunks):
            if i:
                gz.write(b",")
            gz.write(c)
        gz.write(b"]}")
    finally:
        _close(gz)
    return path.stat().st_size


# ================================================================================================
# static files: truth, tagging API, IAM, ENIs, deploys


def write_truth(org: Org, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TRUTH_COLUMNS)
        for r in org.resources:
            tagged = r.tag_correct is not None
            w.writerow((short_id(r.arn), r.arn, resource_kind(r.arn), r.team, r.kind, int(tagged), r.tag_key,
                        r.tag_value, "" if not tagged else int(bool(r.tag_correct))))  # fmt: skip


SPIKES_TRUTH_COLUMNS = ("arn", "kind", "start", "end", "owner_team", "cause_commit", "cause_repo", "cause_actor",
                        "ratio", "level_usd_per_hour")  # fmt: skip


def write_spikes_truth(org: Org, path: Path, cm: CostModel | None = None) -> int:
    """``spikes_truth.csv``: every planted spike, rhythm and legitimate level change, for the watch benchmark.

    kind: ``deploy`` (cause_* name the owner's deploy before it), ``nocause`` (nothing names the resource:
    the right answer is "no cause found"), ``coldstart`` (an engineer's launch through the shared SSO role;
    cause_actor is the engineer's e-mail, owner_team their team), ``rhythm`` (nightly or weekly pattern
    that must not alert; start/end empty), ``shift`` (a legitimate new level that is neither a miss nor a
    false alert when flagged: a resource created inside the window at >= $0.45/h, or an ownership switch
    whose cost phase moves by 2x or more). start/end: ISO 8601 UTC hours, end exclusive. ratio: the
    effective multiplier of the level (coldstart: none); level_usd_per_hour: the level before it
    (coldstart: the on-demand price it runs at).
    """
    cm = cm or cost_model(org)
    epoch, H = org.params.epoch, org.params.hours
    rows: list[tuple] = []
    for sp in org.spikes:
        i = sp.res
        lvl = cm.base[i] * float(cm.shape_rows[cm.shape[i], max(0, sp.h0 - 168):sp.h0].mean()) if sp.h0 > 0 else cm.base[i]
        ratio = f"{cm.factor[i]:.2f}" if i in cm.factor else ""
        if sp.kind == "coldstart":
            lvl = cm.base[i]
        rows.append((org.resources[i].arn, sp.kind, iso(epoch + sp.h0 * 3600), iso(epoch + sp.h1 * 3600), sp.team,
                     sp.commit, sp.repo, sp.actor, ratio, f"{lvl:.4f}"))  # fmt: skip
    for rh in org.rhythms:
        i = rh.res
        rows.append((org.resources[i].arn, "rhythm", "", "", org.resources[i].team, "", "", "", f"{rh.factor:.2f}",
                     f"{cm.base[i]:.4f}"))  # fmt: skip
    planted = {sp.res for sp in org.spikes} | {rh.res for rh in org.rhythms}
    for r in org.resources:
        i = r.idx
        if i in planted:
            continue
        if r.created_hour is not None and 0 < r.created_hour < H:
            scale = max(1.0, float(cm.after_scale[i])) if cm.switch[i] < H else 1.0
            peak = cm.base[i] * float(cm.shape_rows[cm.shape[i], r.created_hour:].max()) * scale
            if peak >= SHIFT_NEW_USD_PER_HOUR:
                rows.append((r.arn, "shift", iso(epoch + r.created_hour * 3600), iso(epoch + H * 3600), r.team,
                             "", "", "", "", f"{peak:.4f}"))  # fmt: skip
        if cm.switch[i] < H and (cm.after_scale[i] >= 2.0 or cm.after_scale[i] <= 0.5):
            rows.append((r.arn, "shift", iso(epoch + int(cm.switch[i]) * 3600), iso(epoch + H * 3600), r.team,
                         "", "", "", f"{cm.after_scale[i]:.2f}", f"{cm.base[i]:.4f}"))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(SPIKES_TRUTH_COLUMNS)
        w.writerows(rows)
    return len(rows)


def write_resources_json(org: Org, path: Path) -> int:
    """``resourcegroupstaggingapi get-resources``: only resources that carry tags are listed."""
    items = [
        {"ResourceARN": r.arn, "Tags": [{"Key": k, "Value": v} for k, v in r.tags.items()]}
        for r in org.resources
        if r.tags
    ]
    path.write_bytes(orjson.dumps({"ResourceTagMappingList": items}, option=orjson.OPT_INDENT_2))
    return len(items)


def _wildcards(org: Org, idxs: set[int], team: str | None) -> list[str]:
    """Policy resources: exact ARNs for a few, name-prefix wildcards when a role touches many."""
    by_type: dict[str, list[Resource]] = defaultdict(list)
    for i in sorted(idxs):
        by_type[org.resources[i].rtype].append(org.resources[i])
    out: list[str] = []
    for rtype, rs in by_type.items():
        if len(rs) <= 12:
            out += [r.arn + ("/*" if rtype == "s3" else "") for r in rs] + (
                [r.arn for r in rs] if rtype == "s3" else []
            )
            continue
        prefixes = sorted({(r.account, r.region if rtype != "s3" else "", r.name.split("-")[0]) for r in rs})
        for acct, region, word in prefixes[:40]:
            if rtype in ("ec2", "ebs"):
                out.append(f"arn:aws:ec2:{region}:{acct}:{'instance' if rtype == 'ec2' else 'volume'}/*")
            elif rtype == "s3":
                out.append(f"arn:aws:s3:::{word}-*")
            elif rtype == "alb":
                out.append(f"arn:aws:elasticloadbalancing:{region}:{acct}:loadbalancer/app/{word}-*")
            elif rtype == "ecs":
                out.append(f"arn:aws:ecs:{region}:{acct}:service/*/{word}-*")
            else:
                sample = next(r for r in rs if r.name.split("-")[0] == word)
                out.append(sample.arn.rsplit(sample.name, 1)[0] + word + "-*")
    return sorted(set(out))


_ACTIONS = {
    "ec2": ["ec2:Describe*", "ec2:CreateTags"], "ebs": ["ec2:DescribeVolumes", "ec2:AttachVolume"],
    "rds": ["rds:Describe*", "rds-db:connect"], "lambda": ["lambda:InvokeFunction", "lambda:GetFunction"],
    "s3": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
    "dynamodb": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
    "sqs": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"], "sns": ["sns:Publish"],
    "ecs": ["ecs:Describe*", "ecs:ListTasks"], "alb": ["elasticloadbalancing:Describe*"],
}  # fmt: skip
_TRUST_SERVICE = {
    "ec2": "ec2.amazonaws.com",
    "ecs": "ecs-tasks.amazonaws.com",
    "lambda": "lambda.amazonaws.com",
}


def _policy(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}


def write_iam_json(org: Org, path: Path) -> None:
    """``aws iam get-account-authorization-details`` (every account of the organisation in one file)."""
    created = iso(org.params.epoch - 86400 * 400)
    roles, users, policies = [], [], []
    team_of = {t.name: t for t in org.teams}
    for key in sorted(org.roles):
        rd = org.roles[key]
        arn_base = f"arn:aws:iam::{rd.account}:"
        if rd.kind == "user":
            inline = []
            if rd.resources:
                inline.append({"PolicyName": "batch-access", "PolicyDocument": _policy([
                    {"Effect": "Allow", "Action": sorted({a for i in rd.resources for a in _ACTIONS[org.resources[i].rtype]}),
                     "Resource": _wildcards(org, rd.resources, rd.team)}])})  # fmt: skip
            users.append({
                "Path": "/", "UserName": rd.name, "UserId": rd.role_id, "Arn": f"{arn_base}user/{rd.name}",
                "CreateDate": created, "UserPolicyList": inline, "GroupList": [] if rd.team else ["admins"],
                "AttachedManagedPolicies": [] if rd.team else [
                    {"PolicyName": "AdministratorAccess", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}],
                "Tags": [],
            })  # fmt: skip
            continue
        trust: dict
        inline = []
        managed = []
        if rd.kind == "service":
            trust = {
                "Effect": "Allow",
                "Principal": {"Service": _TRUST_SERVICE[rd.runtime]},
                "Action": "sts:AssumeRole",
            }
            by_action: dict[tuple[str, ...], set[int]] = defaultdict(set)
            for i in rd.resources:
                by_action[tuple(_ACTIONS[org.resources[i].rtype])].add(i)
            stmts = [{"Effect": "Allow", "Action": list(acts), "Resource": _wildcards(org, idxs, rd.team)}
                     for acts, idxs in sorted(by_action.items())]  # fmt: skip
            if stmts:
                inline.append({"PolicyName": f"{rd.name}-access", "PolicyDocument": _policy(stmts)})
            managed.append({"PolicyName": "CloudWatchAgentServerPolicy",
                            "PolicyArn": "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"})  # fmt: skip
        elif rd.kind == "ci":
            team = team_of[rd.team] if rd.team else None
            subs = [f"repo:{GITHUB_ORG}/{repo}:ref:refs/heads/main" for repo in (team.repos if team else [])]
            trust = {
                "Effect": "Allow",
                "Principal": {"Federated": f"{arn_base}oidc-provider/token.actions.githubusercontent.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                              "StringLike": {"token.actions.githubusercontent.com:sub": subs}},
            }  # fmt: skip
            if rd.resources:
                inline.append({"PolicyName": "deploy", "PolicyDocument": _policy([
                    {"Effect": "Allow", "Action": ["cloudformation:*", "lambda:UpdateFunctionCode", "ecs:UpdateService",
                                                   "s3:PutObject", "dynamodb:UpdateTable", "sqs:SetQueueAttributes"],
                     "Resource": _wildcards(org, rd.resources, rd.team)}])})  # fmt: skip
        elif rd.kind in ("sso_power", "sso_ro"):
            trust = {
                "Effect": "Allow",
                "Principal": {"Federated": f"{arn_base}saml-provider/AWSSSO_{rd.name[-16:]}_DO_NOT_DELETE"},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
            }
            pol = "PowerUserAccess" if rd.kind == "sso_power" else "ReadOnlyAccess"
            managed.append({"PolicyName": pol, "PolicyArn": f"arn:aws:iam::aws:policy/{pol}"})
        else:  # org-wide noise roles
            service = {"backup-runner": "backup.amazonaws.com"}.get(rd.name, "lambda.amazonaws.com")
            trust = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            for pol in {"cloud-custodian": ("ReadOnlyAccess", "ResourceGroupsandTagEditorFullAccess"),
                        "backup-runner": ("service-role/AWSBackupServiceRolePolicyForBackup",),
                        "security-hub-scanner": ("SecurityAudit",)}.get(rd.name, ("ReadOnlyAccess",)):  # fmt: skip
                managed.append(
                    {"PolicyName": pol.rsplit("/", 1)[-1], "PolicyArn": f"arn:aws:iam::aws:policy/{pol}"}
                )
        roles.append({
            "Path": rd.path, "RoleName": rd.name, "RoleId": rd.role_id, "Arn": f"{arn_base}role{rd.path}{rd.name}",
            "CreateDate": created, "AssumeRolePolicyDocument": _policy([trust]), "InstanceProfileList": [],
            "RolePolicyList": inline, "AttachedManagedPolicies": managed, "Tags": [],
            "RoleLastUsed": {"LastUsedDate": iso(org.params.epoch + org.params.hours * 3600 - 7200), "Region": "us-east-1"},
        })  # fmt: skip
    for name, doc in (
        ("PowerUserAccess", {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}),
        (
            "ReadOnlyAccess",
            {"Effect": "Allow", "Action": ["*:Describe*", "*:Get*", "*:List*"], "Resource": "*"},
        ),
    ):
        policies.append({
            "PolicyName": name, "PolicyId": "ANPA" + hashlib.sha1(name.encode()).hexdigest()[:17].upper(),
            "Arn": f"arn:aws:iam::aws:policy/{name}", "Path": "/", "DefaultVersionId": "v1", "AttachmentCount": 1,
            "IsAttachable": True, "CreateDate": created, "UpdateDate": created,
            "PolicyVersionList": [{"Document": _policy([doc]), "VersionId": "v1", "IsDefaultVersion": True,
                                   "CreateDate": created}],
        })  # fmt: skip
    path.write_bytes(orjson.dumps(
        {"UserDetailList": users, "GroupDetailList": [{"Path": "/", "GroupName": "admins", "GroupId": "AGPAADMINS00000001",
                                                       "Arn": f"arn:aws:iam::{org.accounts[0]}:group/admins",
                                                       "CreateDate": created, "GroupPolicyList": [],
                                                       "AttachedManagedPolicies": []}],
         "RoleDetailList": roles, "Policies": policies}, option=orjson.OPT_INDENT_2))  # fmt: skip


def write_network_json(org: Org, path: Path) -> int:
    """``aws ec2 describe-network-interfaces`` for every ENI of the organisation."""
    enis = [e for v in org.vpcs if v.nat_eni for e in (v.nat_eni,)] + [
        e for r in org.resources for e in r.enis
    ]
    out = []
    for e in enis:
        h = hashlib.blake2b(e.eni_id.encode(), digest_size=6).hexdigest()
        d = {
            "AvailabilityZone": e.az, "Description": e.description,
            "Groups": [{"GroupName": f"app-{e.sg[-8:]}", "GroupId": e.sg}] if e.sg else [],
            "InterfaceType": e.interface_type, "Ipv6Addresses": [],
            "MacAddress": ":".join(h[i:i + 2] for i in range(0, 12, 2)), "NetworkInterfaceId": e.eni_id,
            "OwnerId": e.account, "PrivateDnsName": f"ip-{e.ip.replace('.', '-')}." + (
                "ec2.internal" if e.region == "us-east-1" else f"{e.region}.compute.internal"),
            "PrivateIpAddress": e.ip,
            "PrivateIpAddresses": [{"Primary": True, "PrivateIpAddress": e.ip}],
            "RequesterManaged": bool(e.requester or e.interface_type in ("lambda", "nat_gateway")),
            "SourceDestCheck": e.interface_type != "nat_gateway", "Status": "in-use", "SubnetId": e.subnet_id,
            "TagSet": [{"Key": k, "Value": v} for k, v in e.tags], "VpcId": e.vpc_id,
        }  # fmt: skip
        if e.requester:
            d["RequesterId"] = e.requester
        if e.instance:
            d["Attachment"] = {"AttachTime": iso(org.params.epoch - 86400 * 30), "AttachmentId": "eni-attach-" + h,
                               "DeleteOnTermination": True, "DeviceIndex": 0, "NetworkCardIndex": 0,
                               "InstanceId": e.instance, "InstanceOwnerId": e.account, "Status": "attached"}  # fmt: skip
        out.append(d)
    path.write_bytes(orjson.dumps({"NetworkInterfaces": out}, option=orjson.OPT_INDENT_2))
    return len(out)


def write_deploys(org: Org, path: Path) -> int:
    with open(path, "wb") as f:
        for d in org.deploys:
            f.write(orjson.dumps({"time": iso(d.time), "repo": d.repo, "commit": d.commit, "actor": d.actor,
                                  "pipeline": d.pipeline,
                                  "resources": [org.resources[i].arn for i in d.resources]}) + b"\n")  # fmt: skip
    return len(org.deploys)


# ================================================================================================
# CUR 2.0

# rtype -> (product code, usage type, operation, reference unit price for usage_amount)
_CUR_PRODUCT = {
    "ec2": ("AmazonEC2", "BoxUsage:{itype}", "RunInstances", 0.0),
    "ebs": ("AmazonEC2", "EBS:VolumeUsage.gp3", "CreateVolume-Gp3", 0.08 / 730),
    "rds": ("AmazonRDS", "InstanceUsage:{dbclass}", "CreateDBInstance:0014", 0.0),
    "lambda": ("AWSLambda", "Lambda-GB-Second", "Invoke", 0.0000166667),
    "s3": ("AmazonS3", "TimedStorage-ByteHrs", "StandardStorage", 0.023 / 730),
    "dynamodb": ("AmazonDynamoDB", "ReadRequestUnits", "PayPerRequestThroughput", 0.00000025),
    "sqs": ("AWSQueueService", "Requests-Tier1", "GetQueueAttributes", 0.0000004),
    "sns": ("AmazonSNS", "Requests-Tier1", "Publish", 0.0000005),
    "ecs": ("AmazonECS", "Fargate-vCPU-Hours:perCPU", "FargateTask", 0.04048),
    "alb": ("AWSELB", "LoadBalancerUsage", "LoadBalancing:Application", 0.0225),
}
_REGION_PREFIX = {"us-east-1": "", "us-west-2": "USW2-"}
_DT_PREFIX = {"us-east-1": "USE1-", "us-west-2": "USW2-"}


@dataclass(slots=True)
class CostModel:
    """Per resource: base hourly cost (times its daily shape), cost per CloudTrail call, phases."""

    base: np.ndarray
    unit: np.ndarray
    shape: np.ndarray  # index into the shape rows below
    shape_rows: np.ndarray  # (n_shapes, hours)
    alive_from: np.ndarray
    switch: np.ndarray  # hour the second phase starts (hours+1 when none)
    after_scale: np.ndarray
    price: np.ndarray  # reference price for usage_amount (0: amount is hours)
    mult_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # resources with multipliers
    mult: np.ndarray = field(default_factory=lambda: np.ones((0, 0)))  # (len(mult_idx), hours) cost multipliers
    factor: dict[int, float] = field(default_factory=dict)  # planted spike resource -> effective multiplier


SPIKE_MIN_EXTRA = 1.0  # $/h: a planted jump adds at least this much, whatever the nominal ratio says
SPIKE_MAX_RATIO = 40.0
# A resource created in the window whose base cost peaks at or above this ($/h, a little under the
# detector's 0.50 cold-start "info" line: calls add a few cents) may be flagged from its first hours.
SHIFT_NEW_USD_PER_HOUR = 0.45


def cost_model(org: Org) -> CostModel:
    n, H = len(org.resources), org.params.hours
    rng = np.random.default_rng([org.params.seed, 0xC057])
    sh = shapes(org.params)
    office = (sh[2:] > 0.5).astype(np.float64)  # instances stopped outside office hours, per timezone
    rows = np.vstack([np.ones(H), sh[0], office])
    base = np.zeros(n)
    unit = np.zeros(n)
    shape = np.zeros(n, np.int64)
    alive = np.zeros(n, np.int64)
    switch = np.full(n, H + 1, np.int64)
    after = np.ones(n)
    price = np.zeros(n)
    u = rng.random((n, 3))
    cold = {s.res for s in org.spikes if s.kind == "coldstart"}  # billed at their on-demand price
    for r in org.resources:
        i, a, t = r.idx, r.attrs, r.rtype
        price[i] = _CUR_PRODUCT[t][3]
        if t == "ec2":
            base[i] = float(a["price"])
        elif t == "ebs":
            base[i] = int(a["size"]) * 0.08 / 730
        elif t == "rds":
            base[i] = float(a["price"])
        elif t == "lambda":
            unit[i] = (0.0005 + 0.004 * u[i, 0]) * int(a["memory"]) / 512
        elif t == "s3":
            base[i] = float(a["gb"]) * 0.023 / 730
            unit[i] = 0.00002 + 0.0002 * u[i, 0]
        elif t == "dynamodb":
            base[i] = 0.0005 + 0.01 * u[i, 1]
            unit[i] = 0.0002 + 0.002 * u[i, 0]
        elif t in ("sqs", "sns"):
            unit[i] = 0.00005 + 0.0004 * u[i, 0]
        elif t == "ecs":
            base[i] = 0.04 + 0.46 * u[i, 1]
            unit[i] = 0.0001
        else:  # alb
            base[i] = 0.0225
            unit[i] = 0.0008 * (0.5 + u[i, 0])
        if r.schedule == "diurnal":
            shape[i] = 1
        elif r.schedule == "office":
            home = org.by_name.get(r.home)
            shape[i] = 2 + (home.tz if home else 0)
        if r.kind == "sparse" and i not in cold:
            base[i] *= 0.3
            unit[i] *= 0.5
        if r.created_hour is not None:
            alive[i] = r.created_hour
        if r.switch_hour is not None:
            switch[i] = r.switch_hour
            after[i] = 0.7 + 0.9 * u[i, 2]
    # Planted spikes and rhythms multiply a resource's whole cost in their hours. A spike's ratio is
    # raised where needed so that it adds at least SPIKE_MIN_EXTRA $/h over the level before it.
    windows: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    factor: dict[int, float] = {}
    for sp in org.spikes:
        if sp.kind == "coldstart":
            continue
        i = sp.res
        lvl = base[i] * float(rows[shape[i], max(0, sp.h0 - 168):sp.h0].mean()) if sp.h0 > 0 else base[i]
        f = max(sp.ratio, 1.0 + SPIKE_MIN_EXTRA / lvl) if lvl > 0 else sp.ratio
        factor[i] = f = min(f, SPIKE_MAX_RATIO)
        windows[i].append((sp.h0, sp.h1, f))
    for rh in org.rhythms:
        windows[rh.res] += [(a, b, rh.factor) for a, b in rh.windows]
    idx = np.array(sorted(windows), np.int64)
    mult = np.ones((len(idx), H))
    for k, i in enumerate(idx.tolist()):
        for a, b, f in windows[i]:
            mult[k, a:b] *= f
    return CostModel(base, unit, shape, rows, alive, switch, after, price, idx, mult, factor)


def _billing_periods(org: Org) -> list[tuple[str, int, int]]:
    """(YYYY-MM, first hour, end hour) of each month the window touches."""
    out = []
    start, H = org.params.start, org.params.hours
    h = 0
    while h < H:
        t = start + timedelta(hours=h)
        nxt = (t.replace(day=1, hour=0) + timedelta(days=32)).replace(day=1)
        end = min(H, int((nxt - start).total_seconds() // 3600))
        out.append((t.strftime("%Y-%m"), h, end))
        h = end
    return out


class _CurFiles:
    """Rolls ``cur2-0000N.csv.gz`` files of at most CUR_ROWS_PER_FILE rows in one billing period."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.n = 0
        self.rows = 0
        self.gz: gzip.GzipFile | None = None
        self.files: list[Path] = []

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self.gz is None or self.rows >= CUR_ROWS_PER_FILE:
                self.close()
                self.n += 1
                path = self.folder / f"cur2-{self.n:05d}.csv.gz"
                self.files.append(path)
                self.gz = gzip_open(path)
                self.rows = 0
                header = True
            else:
                header = False
            take = min(table.num_rows - start, CUR_ROWS_PER_FILE - self.rows, 250_000)  # bounded buffer
            buf = io.BytesIO()
            pacsv.write_csv(table.slice(start, take), buf, pacsv.WriteOptions(include_header=header))
            self.gz.write(buf.getbuffer())
            self.rows += take
            start += take

    def close(self) -> None:
        if self.gz is not None:
            _close(self.gz)
            self.gz = None


def _dict_col(idx: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), pa.array(values, pa.string()))


def write_cur(org: Org, counts: np.ndarray, bundle: Path) -> tuple[int, list[Path]]:
    """CUR 2.0 hourly line items: one per resource-hour with a cost, plus unattributable spend."""
    res = org.resources
    n, H = len(res), org.params.hours
    cm = cost_model(org)
    epoch = org.params.epoch
    accounts = sorted({r.account for r in res})
    acct_i = np.array([accounts.index(r.account) for r in res], np.int64)
    region_i = np.array([REGIONS.index(r.region) for r in res], np.int64)
    rtype_i = np.array([RTYPES.index(r.rtype) for r in res], np.int64)
    groups = defaultdict(list)
    for r in res:
        groups[(r.account, r.region)].append(r.idx)
    dt_groups = [(a, g, np.array(ix, np.int64)) for (a, g), ix in sorted(groups.items())]
    billing_id = [r.name if r.rtype in ("ec2", "ebs", "s3") else r.arn for r in res]
    product = [_CUR_PRODUCT[r.rtype][0] for r in res]
    usage_type = [_REGION_PREFIX[r.region] + _CUR_PRODUCT[r.rtype][1].format(**r.attrs) if "{" in _CUR_PRODUCT[r.rtype][1]
                  else _REGION_PREFIX[r.region] + _CUR_PRODUCT[r.rtype][1] for r in res]  # fmt: skip
    operation = [_CUR_PRODUCT[r.rtype][2] for r in res]
    tag_values: list[str] = [""]
    tag_index: dict[str, int] = {"": 0}

    def tag_of(tags: dict[str, str] | None) -> int:
        v = (tags or {}).get(ACTIVATED_TAG_KEY)
        s = orjson.dumps({f"user:{ACTIVATED_TAG_KEY}": v}).decode() if v is not None else ""
        if s not in tag_index:
            tag_index[s] = len(tag_values)
            tag_values.append(s)
        return tag_index[s]

    tag_after = np.array([tag_of(r.tags if r.team != UNOWNED else None) for r in res], np.int64)
    tag_before = np.array(
        [tag_of(r.prev_tags) if r.prev_tags is not None else tag_after[r.idx] for r in res], np.int64
    )
    hour_str = [iso(epoch + h * 3600) for h in range(H + 1)]
    rows_total = 0
    files: list[Path] = []
    block = max(1, min(168, 2_000_000 // max(1, n)))
    spend = defaultdict(float)  # (period, account, product) -> cost, for tax
    for period, h_start, h_end in _billing_periods(org):
        folder = bundle / "cost" / "cur2" / "data" / f"BILLING_PERIOD={period}"
        folder.mkdir(parents=True, exist_ok=True)
        period_start = f"{period}-01T00:00:00Z"
        writer = _CurFiles(folder)
        for h0 in range(h_start, h_end, block):
            h1 = min(h_end, h0 + block)
            hrs = np.arange(h0, h1)
            alive = hrs[None, :] >= cm.alive_from[:, None]
            scale = np.where(hrs[None, :] >= cm.switch[:, None], cm.after_scale[:, None], 1.0)
            cost = (cm.base[:, None] * cm.shape_rows[cm.shape][:, h0:h1] * scale * alive
                    + cm.unit[:, None] * counts[:, h0:h1])  # fmt: skip
            hours_used = np.ones_like(cost)  # instance-hours behind a time-priced line (more of them in a spike)
            if len(cm.mult_idx):
                cost[cm.mult_idx] *= cm.mult[:, h0:h1]
                hours_used[cm.mult_idx] = cm.mult[:, h0:h1]
            cost = np.round(cost, 8)
            ct = cost.T  # hour-major rows
            hh, rr = np.nonzero(ct > 0)
            c = ct[hh, rr]
            hour = hh + h0
            amount = np.where(cm.price[rr] > 0, c / np.where(cm.price[rr] > 0, cm.price[rr], 1.0),
                              hours_used.T[hh, rr])  # fmt: skip
            tags = np.where(hour >= cm.switch[rr], tag_after[rr], tag_before[rr])
            sp = np.zeros((len(accounts), len(RTYPES)))
            np.add.at(sp, (acct_i[rr], rtype_i[rr]), c)
            for ai, ti in zip(*np.nonzero(sp), strict=True):
                spend[(period, accounts[ai], _CUR_PRODUCT[RTYPES[ti]][0])] += float(sp[ai, ti])
            m = len(c)
            table = pa.table({
                "bill_billing_period_start_date": _dict_col(np.zeros(m, np.int64), [period_start]),
                "line_item_usage_account_id": _dict_col(acct_i[rr], accounts),
                "line_item_line_item_type": _dict_col(np.zeros(m, np.int64), ["Usage"]),
                "line_item_usage_start_date": _dict_col(hour - h0, hour_str[h0:h1]),
                "line_item_usage_end_date": _dict_col(hour - h0, hour_str[h0 + 1:h1 + 1]),
                "line_item_product_code": _dict_col(rr, product),
                "line_item_usage_type": _dict_col(rr, usage_type),
                "line_item_operation": _dict_col(rr, operation),
                "line_item_resource_id": _dict_col(rr, billing_id),
                "line_item_usage_amount": pa.array(np.round(amount, 6)),
                "line_item_unblended_cost": pa.array(c),
                "line_item_blended_cost": pa.array(c),
                "product_region_code": _dict_col(region_i[rr], list(REGIONS)),
                "resource_tags": _dict_col(tags, tag_values),
            })  # fmt: skip
            writer.write(table)
            rows_total += m
            # Unattributable: data transfer per account and region, every hour (no resource id).
            extra = _unattributed_hourly(dt_groups, counts, hrs, hour_str, period_start)
            if extra is not None:
                writer.write(extra)
                rows_total += extra.num_rows
        # Tax and support for the period: no resource id.
        end = hour_str[h_end] if h_end < len(hour_str) else hour_str[-1]
        trows = []
        for (p, acct, prod), amount in sorted(spend.items()):
            if p == period:
                trows.append((acct, "Tax", prod, "", "", round(amount * 0.07, 8)))
        for acct in accounts:
            total = sum(v for (p, a, _), v in spend.items() if p == period and a == acct)
            trows.append(
                (
                    acct,
                    "Fee",
                    "AWSSupportBusiness",
                    "Dollar",
                    "",
                    round(max(100.0 * (h_end - h_start) / 720, total * 0.1), 8),
                )
            )
        if trows:
            k = len(trows)
            writer.write(pa.table({
                "bill_billing_period_start_date": pa.array([period_start] * k),
                "line_item_usage_account_id": pa.array([t[0] for t in trows]),
                "line_item_line_item_type": pa.array([t[1] for t in trows]),
                "line_item_usage_start_date": pa.array([hour_str[h_start]] * k),
                "line_item_usage_end_date": pa.array([end] * k),
                "line_item_product_code": pa.array([t[2] for t in trows]),
                "line_item_usage_type": pa.array([t[3] for t in trows]),
                "line_item_operation": pa.array([t[4] for t in trows]),
                "line_item_resource_id": pa.array([""] * k),
                "line_item_usage_amount": pa.array([t[5] for t in trows], pa.float64()),
                "line_item_unblended_cost": pa.array([t[5] for t in trows], pa.float64()),
                "line_item_blended_cost": pa.array([t[5] for t in trows], pa.float64()),
                "product_region_code": pa.array([""] * k),
                "resource_tags": pa.array([""] * k),
            }))  # fmt: skip
            rows_total += k
        writer.close()
        files += writer.files
    return rows_total, files


def _unattributed_hourly(groups: list[tuple[str, str, np.ndarray]], counts: np.ndarray, hrs: np.ndarray,
                         hour_str: list[str], period_start: str) -> pa.Table | None:  # fmt: skip
    rows_a, rows_r, rows_h, rows_c = [], [], [], []
    for acct, region, idx in groups:
        per_hour = counts[idx][:, hrs].sum(axis=0)
        for k, h in enumerate(hrs):
            c = round(0.002 * len(idx) + 0.00003 * float(per_hour[k]), 8)
            if c > 0:
                rows_a.append(acct)
                rows_r.append(region)
                rows_h.append(int(h))
                rows_c.append(c)
    if not rows_c:
        return None
    k = len(rows_c)
    return pa.table({
        "bill_billing_period_start_date": pa.array([period_start] * k),
        "line_item_usage_account_id": pa.array(rows_a),
        "line_item_line_item_type": pa.array(["Usage"] * k),
        "line_item_usage_start_date": pa.array([hour_str[h] for h in rows_h]),
        "line_item_usage_end_date": pa.array([hour_str[h + 1] for h in rows_h]),
        "line_item_product_code": pa.array(["AWSDataTransfer"] * k),
        "line_item_usage_type": pa.array([_DT_PREFIX[r] + "DataTransfer-Out-Bytes" for r in rows_r]),
        "line_item_operation": pa.array(["PublicIP-Out"] * k),
        "line_item_resource_id": pa.array([""] * k),
        "line_item_usage_amount": pa.array([round(c / 0.09, 6) for c in rows_c]),
        "line_item_unblended_cost": pa.array(rows_c),
        "line_item_blended_cost": pa.array(rows_c),
        "product_region_code": pa.array(rows_r),
        "resource_tags": pa.array([""] * k),
    })  # fmt: skip


# ================================================================================================
# VPC flow logs (version 2, default format)


def write_flow_day(org: Org, day: int, bundle: Path) -> tuple[int, list[Path]]:
    """One day of flow records: both ends of each flow, plus rejected probes from the internet."""
    pl = org.plan
    res = org.resources
    rng = np.random.default_rng([org.params.seed, 0xF10, day])
    H = org.params.hours
    d0, d1 = day * 24, min(H, day * 24 + 24)
    src = np.asarray(pl.f_src, np.int64)
    dst = np.asarray(pl.f_dst, np.int64)
    rate = np.asarray(pl.f_rate, np.float64)
    h0 = np.asarray(pl.f_h0, np.int64)
    h1 = np.asarray(pl.f_h1, np.int64)
    overlap = np.clip(np.minimum(h1, d1) - np.maximum(h0, d0), 0, None) / 24.0
    n = rng.poisson(rate * overlap) if len(rate) else np.zeros(0, np.int64)
    fi = np.repeat(np.arange(len(n)), n)
    m = len(fi)
    lo = np.maximum(h0[fi], d0) * 3600
    hi = np.minimum(h1[fi], d1) * 3600
    t = lo + (rng.random(m) * np.maximum(1, hi - lo)).astype(np.int64)
    t = (t // 60) * 60 + org.params.epoch
    packets = rng.integers(4, 4000, m)
    nbytes = packets * rng.integers(60, 1400, m)
    sport = rng.integers(32768, 61000, m)
    pick = rng.random((m, 2))
    lines: dict[tuple[str, str], list[tuple[int, bytes]]] = defaultdict(list)
    for k in range(m):
        s, d = res[src[fi[k]]], res[dst[fi[k]]]
        se = s.enis[int(pick[k, 0] * len(s.enis))]
        de = d.enis[int(pick[k, 1] * len(d.enis))]
        port = {"rds": 5432 if d.attrs.get("engine") == "postgres" else 3306, "alb": 443}.get(d.rtype, 8080)
        tk = int(t[k])
        rest = b"%s %s %d %d 6 %d %d %d %d ACCEPT OK\n" % (se.ip.encode(), de.ip.encode(), sport[k], port, packets[k],
                                                           nbytes[k], tk, tk + 59)  # fmt: skip
        lines[(se.account, se.region)].append(
            (tk, b"2 %s %s " % (se.account.encode(), se.eni_id.encode()) + rest)
        )
        lines[(de.account, de.region)].append(
            (tk, b"2 %s %s " % (de.account.encode(), de.eni_id.encode()) + rest)
        )
    # Internet probes against a few interfaces, rejected by their security groups.
    enis = [e for r in res for e in r.enis]
    if enis:
        probes = rng.poisson(0.2 * len(enis) * (d1 - d0) / 24)
        which = rng.integers(0, len(enis), probes)
        src_ip = rng.integers(0, 2**32, probes, dtype=np.uint64)
        pt = (
            org.params.epoch + d0 * 3600 + (rng.random(probes) * (d1 - d0) * 3600).astype(np.int64) // 60 * 60
        )
        ports = rng.choice(np.array([22, 23, 3389, 445, 6379]), probes)
        for k in range(probes):
            e = enis[int(which[k])]
            ip = int(src_ip[k]) | (45 << 24)
            ip = f"{ip >> 24 & 255}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"
            tk = int(pt[k])
            lines[(e.account, e.region)].append((tk, b"2 %s %s %s %s %d %d 6 1 44 %d %d REJECT OK\n" % (
                e.account.encode(), e.eni_id.encode(), ip.encode(), e.ip.encode(), 40000 + k % 20000, ports[k],
                tk, tk + 59)))  # fmt: skip
    files = []
    total = 0
    for acct, region in sorted(lines):
        recs = sorted(lines[(acct, region)], key=lambda x: x[0])
        path = bundle / "flowlogs" / f"{acct}_vpcflowlogs_{region}_{day + 1:04d}.log.gz"
        gz = gzip_open(path)
        try:
            gz.write(FLOW_HEADER)
            gz.write(b"".join(x[1] for x in recs))
        finally:
            _close(gz)
        files.append(path)
        total += len(recs)
    return total, files
