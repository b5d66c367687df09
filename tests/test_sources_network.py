"""Network interfaces (describe-network-interfaces) and VPC flow logs."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

from engine.records import BundleIssue
from engine.sources.flowlogs import flowlog_files, read_flow_file
from engine.sources.inventory import bundle_region, read_network_json, region_of_az

# ---------------------------------------------------------------------------------------------
# ENIs


def test_costdna_synthetic_seed0_network_json(shared_data):
    seed = shared_data / "costdna-synthetic/seed0"
    issues: list[BundleIssue] = []
    # This export has no AvailabilityZone: the caller's region is used.
    itfs = read_network_json(seed / "bundle/network.json", issues, default_region="us-east-1")
    assert issues == [] and len(itfs) == 45
    truth = {r["arn"] for r in csv.DictReader((seed / "truth.csv").open())}
    attached = [i.resource for i in itfs]
    assert all(a in truth for a in attached)  # every ENI maps to a truth resource
    kinds = [a.split(":")[2] for a in attached]
    assert (kinds.count("ec2"), kinds.count("rds"), kinds.count("lambda")) == (15, 14, 16)
    first = itfs[0]
    assert first.eni_id == "eni-df745bfe" and first.private_ips == ("10.1.0.11",)
    assert first.vpc_id.startswith("vpc-") and first.account == "111111111111" and first.region == "us-east-1"
    # Without a region from the caller, the bundle's CloudTrail layout and flow-log names give it.
    assert bundle_region(seed / "bundle") == "us-east-1"
    assert [i.resource for i in read_network_json(seed / "bundle/network.json", [])] == attached
    no_region = read_network_json(seed / "bundle/network.json", [], default_region="")
    assert no_region[0].resource == "arn:aws:ec2::111111111111:instance/i-6baa9455"


def eni(eid: str, **kw) -> dict:
    return {"NetworkInterfaceId": eid, "OwnerId": "111", "AvailabilityZone": "eu-west-1b", "VpcId": "vpc-1",
            "SubnetId": "subnet-1", "PrivateIpAddress": "10.0.0.1", **kw}


def test_handwritten_lambda_elb_nat_rds_and_unknown(tmp_path):
    doc = {"NetworkInterfaces": [
        eni("eni-1", InterfaceType="lambda",
            Description="AWS Lambda VPC ENI-resize-images-2f6c1a5e-8a1b-4d5e-9f00-123456789abc"),
        eni("eni-2", Description="ELB app/web-alb/50dc6c495c0c9188", InterfaceType="interface",
            PrivateIpAddresses=[{"PrivateIpAddress": "10.0.0.1"}, {"PrivateIpAddress": "10.0.0.2"}],
            Ipv6Addresses=[{"Ipv6Address": "2001:db8::1"}], Groups=[{"GroupId": "sg-1"}, {"GroupId": "sg-2"}]),
        eni("eni-3", Description="Interface for NAT Gateway nat-0abc", InterfaceType="nat_gateway"),
        eni("eni-4", Description="RDSNetworkInterface", RequesterId="amazon-rds"),
        eni("eni-5", Description="ELB classic-lb"),
        eni("eni-6", Description="something else", AvailabilityZone="us-west-2-lax-1a"),
        eni("eni-7", Attachment={"InstanceId": "i-0aa", "InstanceOwnerId": "111"}),
        {"Description": "no id"},
    ]}
    path = tmp_path / "network.json"
    path.write_text(json.dumps(doc))
    issues: list[BundleIssue] = []
    by = {i.eni_id: i for i in read_network_json(path, issues)}
    assert by["eni-1"].resource == "arn:aws:lambda:eu-west-1:111:function:resize-images"
    assert by["eni-2"].resource == "arn:aws:elasticloadbalancing:eu-west-1:111:loadbalancer/app/web-alb/50dc6c495c0c9188"
    assert by["eni-2"].private_ips == ("10.0.0.1", "10.0.0.2", "2001:db8::1")
    assert by["eni-2"].security_groups == ("sg-1", "sg-2")
    assert by["eni-3"].resource == "arn:aws:ec2:eu-west-1:111:natgateway/nat-0abc"
    assert by["eni-4"].resource is None  # AWS writes no DB name on RDS interfaces
    assert by["eni-5"].resource == "arn:aws:elasticloadbalancing:eu-west-1:111:loadbalancer/classic-lb"
    assert by["eni-6"].resource is None and by["eni-6"].region == "us-west-2"
    assert by["eni-7"].resource == "arn:aws:ec2:eu-west-1:111:instance/i-0aa"
    assert [(i.location, i.message) for i in issues] == [("NetworkInterfaces[8]", "interface has no NetworkInterfaceId")]


def test_bundle_region_from_layout(tmp_path):
    assert bundle_region(tmp_path) == ""
    (tmp_path / "cloudtrail/AWSLogs/1/CloudTrail/eu-west-1/2024").mkdir(parents=True)
    assert bundle_region(tmp_path) == "eu-west-1"
    (tmp_path / "flowlogs").mkdir()
    (tmp_path / "flowlogs/1_vpcflowlogs_eu-west-1_fl-1_20240101T0000Z_abc.log.gz").write_bytes(b"")
    assert bundle_region(tmp_path) == "eu-west-1"
    (tmp_path / "cloudtrail/AWSLogs/1/CloudTrail/us-east-2").mkdir()
    assert bundle_region(tmp_path) == ""  # two regions: ENIs without a zone stay unplaced


def test_region_of_az():
    assert region_of_az("us-east-1a") == "us-east-1"
    assert region_of_az("us-gov-west-1b") == "us-gov-west-1"
    assert region_of_az("us-west-2-lax-1a") == "us-west-2"
    assert region_of_az("") == region_of_az("use1-az1") == ""


def test_network_json_broken(tmp_path):
    path = tmp_path / "network.json"
    path.write_text('{"NetworkInterfaces": [{"NetworkInterfaceId": ')
    issues: list[BundleIssue] = []
    assert read_network_json(path, issues) == []
    assert len(issues) == 1 and issues[0].message.startswith("not valid JSON")


# ---------------------------------------------------------------------------------------------
# flow logs


def test_costdna_synthetic_seed0_flowlogs(shared_data):
    bundle = shared_data / "costdna-synthetic/seed0/bundle"
    files = flowlog_files(bundle)
    assert [f.name for f in files] == ["111111111111_vpcflowlogs_us-east-1.log.gz"]
    lines = gzip.decompress(files[0].read_bytes()).decode().splitlines()
    issues: list[BundleIssue] = []
    flows = list(read_flow_file(files[0], issues))
    assert issues == []
    assert len(flows) == len(lines) - 1 == 135  # the header line is not a flow
    f = flows[0]
    assert (f.interface_id, f.src_addr, f.dst_addr, f.bytes, f.packets, f.start, f.action, f.account) == (
        "eni-df745bfe", "10.1.0.11", "10.1.0.16", 2591790, 1851, 1763000000, "ACCEPT", "111111111111")


V2 = "2 123 eni-1 10.0.0.1 10.0.0.2 443 50000 6 10 {b} 1700000000 1700000060 ACCEPT OK"


def test_default_format_without_header_nodata_and_bad_lines(tmp_path):
    body = "\n".join([
        V2.format(b=100),
        "2 123 eni-1 - - - - - - - 1700000000 1700000060 - NODATA",
        "2 123 eni-1 - - - - - - - 1700000000 1700000060 - SKIPDATA",
        "2 123 eni-1 10.0.0.1",  # too few fields
        V2.format(b="lots"),      # bytes not a number
        "",
        V2.format(b=300),
    ])
    path = tmp_path / "flowlogs" / "x.log"
    path.parent.mkdir()
    path.write_text(body + "\n")
    issues: list[BundleIssue] = []
    flows = list(read_flow_file(path, issues))
    assert [f.bytes for f in flows] == [100, 300]
    assert [(i.location, i.message) for i in issues] == [
        ("line 4", "expected 14 fields, got 4"),
        ("line 5", "bytes 'lots' is not a whole number of bytes; line skipped"),
    ]
    assert flowlog_files(tmp_path) == [path]


def test_custom_format_header_in_any_order(tmp_path):
    body = "srcaddr interface-id bytes dstaddr start\n10.0.0.5 eni-9 42 10.0.0.6 1700000100\n"
    path = tmp_path / "custom.txt.gz"
    path.write_bytes(gzip.compress(body.encode()))
    (f,) = read_flow_file(path, [])
    assert (f.interface_id, f.src_addr, f.dst_addr, f.bytes, f.packets, f.start, f.action) == (
        "eni-9", "10.0.0.5", "10.0.0.6", 42, 0, 1700000100, "")


def test_header_without_addresses_is_one_issue(tmp_path):
    path = tmp_path / "bad.log"
    path.write_text("version interface-id bytes\n2 eni-1 5\n")
    issues: list[BundleIssue] = []
    assert list(read_flow_file(path, issues)) == []
    assert [(i.location, i.message) for i in issues] == [("line 1", "flow log header has no srcaddr, dstaddr field")]


def test_truncated_gzip_keeps_lines_before_the_cut(tmp_path):
    body = "".join(V2.format(b=i) + "\n" for i in range(20000))
    data = gzip.compress(body.encode())
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    issues: list[BundleIssue] = []
    flows = list(read_flow_file(path, issues))
    assert 0 < len(flows) < 20000
    assert [f.bytes for f in flows] == list(range(len(flows)))  # in order, none garbled
    assert len(issues) == 1 and issues[0].message == "truncated gzip stream; lines before it were read"


def test_missing_file_is_one_issue(tmp_path):
    issues: list[BundleIssue] = []
    assert list(read_flow_file(tmp_path / "none.log", issues)) == []
    assert len(issues) == 1 and issues[0].message.startswith("cannot read file")


def test_flowlog_files_suffixes(tmp_path: Path):
    d = tmp_path / "flowlogs/AWSLogs/1/vpcflowlogs/us-east-1/2024/01/01"
    d.mkdir(parents=True)
    for n in ("a.log", "b.log.gz", "c.txt", "d.txt.gz", "e.csv"):
        (d / n).write_text("")
    assert [p.name for p in flowlog_files(tmp_path)] == ["a.log", "b.log.gz", "c.txt", "d.txt.gz"]
