"""The synthetic generator writes real export formats, reproducibly, with the hard cases it promises.

Every check reads the written files with the plain json/gzip/csv modules (as a user's tooling would),
and rebuilds the organisation model only to know which principal belongs to which team.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from engine.arns import arn_from_billing_id, build_arn, canonical_arn, resource_kind, short_id
from engine.synth import KINDS, UNOWNED, UNOWNED_KINDS, OrgParams, build_org, generate
from engine.synth.org import OWNER_TAG_KEYS, TEAM_POOL, normalise_tag_value
from engine.synth.writers import CUR_COLUMNS, TRUTH_COLUMNS

TINY = dict(teams=4, resources_per_team=12, days=3, events_per_resource_day=10.0)
MID = dict(teams=6, resources_per_team=40, days=4, events_per_resource_day=20.0)
CT_FIELDS = ("eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
             "sourceIPAddress", "userAgent", "requestParameters", "responseElements", "eventID", "readOnly",
             "eventType", "managementEvent", "recipientAccountId")  # fmt: skip


# ------------------------------------------------------------------------------------------------
# helpers: read a bundle with the standard library only


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _records(bundle: Path) -> list[dict]:
    out = []
    for p in sorted((bundle / "cloudtrail").rglob("*.json.gz")):
        with gzip.open(p, "rt") as f:
            out += json.load(f)["Records"]
    return out


def _cur_rows(bundle: Path) -> list[dict]:
    rows = []
    for p in sorted((bundle / "cost").rglob("*.csv.gz")):
        with gzip.open(p, "rt", newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def _truth(out: Path) -> list[dict]:
    with open(out / "truth.csv", newline="") as f:
        return list(csv.DictReader(f))


def _ids(rec: dict) -> set[str]:
    """ARNs a record names, found the way a reader must: per-service keys and resources[]."""
    src = rec["eventSource"].split(".")[0]
    region, acct = rec["awsRegion"], rec["recipientAccountId"]
    rp = rec.get("requestParameters") or {}
    re_ = rec.get("responseElements") or {}
    out: set[str] = set()

    def ec2(v: str | None) -> None:
        if v and v.startswith("i-"):
            out.add(build_arn("ec2:instance", v, region, acct))
        elif v and v.startswith("vol-"):
            out.add(build_arn("ec2:volume", v, region, acct))

    if src in ("ec2", "ssm"):
        for d in (rp, re_):
            ec2(d.get("instanceId"))
            ec2(d.get("volumeId"))
            for key, sub in (
                ("instancesSet", "instanceId"),
                ("volumeSet", "volumeId"),
                ("resourcesSet", "resourceId"),
            ):
                for item in (d.get(key) or {}).get("items", []):
                    ec2(item.get(sub))
        ec2((rp.get("ModifyVolumeRequest") or {}).get("VolumeId"))
        ec2(rp.get("target"))
    elif src == "rds":
        if rp.get("dBInstanceIdentifier"):
            out.add(build_arn("rds:db", rp["dBInstanceIdentifier"], region, acct))
        if rp.get("resourceName"):
            out.add(rp["resourceName"])
    elif src == "lambda":
        for v in (rp.get("functionName"), rp.get("resource")):
            if v:
                out.add(build_arn("lambda:function", v, region, acct))
    elif src == "s3" and rp.get("bucketName"):
        out.add(build_arn("s3:bucket", rp["bucketName"]))
    elif src == "dynamodb":
        if rp.get("tableName"):
            out.add(build_arn("dynamodb:table", rp["tableName"], region, acct))
        if rp.get("resourceArn"):
            out.add(rp["resourceArn"])
    elif src == "sqs":
        url = rp.get("queueUrl") or re_.get("queueUrl")
        if url:
            *_, qacct, name = url.split("/")
            out.add(build_arn("sqs:queue", name, region, qacct))
    elif src == "sns":
        for v in (rp.get("topicArn"), rp.get("resourceArn"), re_.get("topicArn")):
            if v:
                out.add(v)
    elif src == "ecs":
        cluster = rp.get("cluster")
        for svc in [rp.get("service"), rp.get("serviceName"), *(rp.get("services") or [])]:
            if cluster and svc:
                out.add(build_arn("ecs:service", f"{cluster}/{svc}", region, acct))
        if rp.get("resourceArn"):
            out.add(rp["resourceArn"])
    elif src == "elasticloadbalancing":
        out.update(v for v in [rp.get("loadBalancerArn"), *(rp.get("loadBalancerArns") or []),
                               *(rp.get("resourceArns") or [])] if v)  # fmt: skip
        out.update(lb["loadBalancerArn"] for lb in re_.get("loadBalancers") or [])
    for r in rec.get("resources") or []:
        out.add(canonical_arn(r["ARN"]))
    return out


def _caller_team(rec: dict, org) -> str | None:
    """The team behind a call: a team's role or IAM user, or a person through the shared SSO role."""
    ui = rec["userIdentity"]
    if ui["type"] == "AssumedRole":
        role = ui["sessionContext"]["sessionIssuer"]["userName"]
        session = ui["arn"].rsplit("/", 1)[-1]
        if role.startswith("AWSReservedSSO_"):
            return org.people_team.get(session)
        rd = org.roles.get(role)
        return rd.team if rd else None
    if ui["type"] == "IAMUser":
        rd = org.roles.get(ui["userName"])
        return rd.team if rd else None
    return None


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def mid(tmp_path_factory: pytest.TempPathFactory):
    """A mid-size organisation, generated once: (out dir, summary, org model, records, truth rows)."""
    out = tmp_path_factory.mktemp("mid")
    summary = generate(out, seed=7, workers=2, **MID)
    org = build_org(OrgParams(seed=7, teams=MID["teams"], resources_per_team=MID["resources_per_team"],
                              days=MID["days"], events_per_resource_day=MID["events_per_resource_day"]))  # fmt: skip
    return out, summary, org, _records(out / "bundle"), _truth(out)


# ------------------------------------------------------------------------------------------------
# reproducibility


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path):
    stages: list[tuple[str, float]] = []
    a = generate(tmp_path / "a", seed=3, workers=1, progress=lambda s, f: stages.append((s, f)), **TINY)
    assert {s for s, _ in stages} >= {"cloudtrail", "cost", "flowlogs", "done"} and stages[-1] == (
        "done",
        1.0,
    )
    b = generate(tmp_path / "b", seed=3, workers=2, **TINY)
    assert a.events == b.events > 0
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db
    assert any(k.startswith("bundle/cloudtrail/") for k in da)


def test_different_seed_different_bundle(tmp_path: Path):
    generate(tmp_path / "a", seed=1, workers=1, **TINY)
    generate(tmp_path / "b", seed=2, workers=1, **TINY)
    assert (tmp_path / "a" / "truth.csv").read_bytes() != (tmp_path / "b" / "truth.csv").read_bytes()
    assert (tmp_path / "a" / "bundle" / "iam.json").read_bytes() != (
        tmp_path / "b" / "bundle" / "iam.json"
    ).read_bytes()


# ------------------------------------------------------------------------------------------------
# formats


def test_every_file_parses_with_the_standard_library(mid):
    out, summary, org, records, truth = mid
    bundle = out / "bundle"
    ct_files = sorted((bundle / "cloudtrail").rglob("*"))
    for p in (f for f in ct_files if f.is_file()):
        assert p.name.endswith(".json.gz") and "_CloudTrail_" in p.name
        assert p.relative_to(bundle).parts[:4] == ("cloudtrail", "AWSLogs", p.name[:12], "CloudTrail")
    assert len(records) == summary.events
    ids = set()
    kinds = Counter()
    for rec in records:
        for f in CT_FIELDS:
            assert f in rec, f
        ids.add(rec["eventID"])
        ui = rec["userIdentity"]
        kinds[ui["type"]] += 1
        if ui["type"] == "AssumedRole":
            si = ui["sessionContext"]["sessionIssuer"]
            assert ui["principalId"].startswith(si["principalId"] + ":")
            assert ui["arn"].startswith(f"arn:aws:sts::{ui['accountId']}:assumed-role/{si['userName']}/")
        if rec["eventName"] == "RunInstances":
            assert rec["responseElements"]["instancesSet"]["items"][0]["instanceId"].startswith("i-")
    assert len(ids) == len(records)  # event ids are unique
    assert {"AssumedRole", "IAMUser", "AWSService"} <= set(kinds)
    assert any("errorCode" in r for r in records)
    with_res = sum(1 for r in records if "resources" in r)
    assert 0 < with_res < len(records)

    rows = _cur_rows(bundle)
    assert len(rows) == summary.cost_rows
    assert tuple(rows[0]) == CUR_COLUMNS
    for p in (bundle / "cost").rglob("*.csv.gz"):
        assert p.parent.name.startswith("BILLING_PERIOD=") and p.name.startswith("cur2-")
    assert any(r["line_item_resource_id"] == "" for r in rows)
    for r in rows[:500]:
        float(r["line_item_unblended_cost"])
        tags = r["resource_tags"]
        if tags:
            assert set(json.loads(tags)) == {"user:team"}

    tagging = json.loads((bundle / "resources.json").read_text())
    assert all({"ResourceARN", "Tags"} <= set(m) for m in tagging["ResourceTagMappingList"])
    iam = json.loads((bundle / "iam.json").read_text())
    assert {"UserDetailList", "RoleDetailList", "Policies", "GroupDetailList"} <= set(iam)
    for role in iam["RoleDetailList"]:
        assert role["AssumeRolePolicyDocument"]["Statement"]
    assert any(
        p["PolicyDocument"]["Statement"][0]["Resource"]
        for r in iam["RoleDetailList"]
        for p in r["RolePolicyList"]
    )
    enis = json.loads((bundle / "network.json").read_text())["NetworkInterfaces"]
    for e in enis:
        assert {"NetworkInterfaceId", "PrivateIpAddress", "VpcId", "SubnetId", "AvailabilityZone"} <= set(e)
    assert {e["InterfaceType"] for e in enis} >= {"interface", "lambda"}
    flow_lines = 0
    for p in (bundle / "flowlogs").glob("*.log.gz"):
        assert "_vpcflowlogs_" in p.name
        with gzip.open(p, "rt") as f:
            head = f.readline().split()
            assert head[:5] == ["version", "account-id", "interface-id", "srcaddr", "dstaddr"]
            for line in f:
                parts = line.split()
                assert len(parts) == 14 and parts[0] == "2" and parts[12] in ("ACCEPT", "REJECT")
                flow_lines += 1
    assert flow_lines == summary.flow_records > 0
    deploys = [json.loads(x) for x in (bundle / "deploys.jsonl").read_text().splitlines()]
    assert deploys and all(
        {"time", "repo", "commit", "actor", "pipeline", "resources"} <= set(d) for d in deploys
    )
    assert tuple(truth[0]) == TRUTH_COLUMNS


# ------------------------------------------------------------------------------------------------
# truth


def test_truth_lists_every_resource_and_every_kind(mid):
    out, summary, org, records, truth = mid
    assert len(truth) == summary.resources == MID["teams"] * MID["resources_per_team"]
    assert len({t["arn"] for t in truth}) == len(truth)
    kinds = Counter(t["kind"] for t in truth)
    assert set(kinds) == set(KINDS)
    n = len(truth)
    for k in KINDS[1:]:
        assert kinds[k] >= 0.04 * n, (k, kinds)
    assert 0.5 < kinds["clean"] / n < 0.7
    for t in truth:
        assert t["resource_id"] == short_id(t["arn"])
        assert t["type"] == resource_kind(t["arn"])
        assert (t["team"] == UNOWNED) == (t["kind"] in UNOWNED_KINDS)
    # messy tags: several keys, wrong ones among clean, stale ones among reassigned
    tagged = [t for t in truth if t["tagged"] == "1"]
    assert 0.35 < len(tagged) / sum(1 for t in truth if t["team"] != UNOWNED) < 0.65
    assert len({t["tag_key"] for t in tagged}) >= 3
    assert any(t["tag_correct"] == "0" and t["kind"] == "clean" for t in tagged)
    for t in tagged:
        meant = normalise_tag_value(t["tag_value"], org.team_names)
        assert meant is not None
        assert (meant == t["team"]) == (t["tag_correct"] == "1")


def test_names_never_contain_a_team_name(mid):
    out, summary, org, records, truth = mid
    teams = {t.name for t in org.teams} | {name for name, _ in TEAM_POOL}
    bundle = out / "bundle"
    iam = json.loads((bundle / "iam.json").read_text())
    names = [r["RoleName"] for r in iam["RoleDetailList"]] + [u["UserName"] for u in iam["UserDetailList"]]
    names += [t["resource_id"] for t in truth]
    names += [json.loads(x)["repo"] for x in (bundle / "deploys.jsonl").read_text().splitlines()]
    names += [t.ecs_cluster for t in org.teams] + [repo for t in org.teams for repo in t.repos]
    names += [m["Value"] for m in (tg for r in json.loads((bundle / "resources.json").read_text())
                                   ["ResourceTagMappingList"] for tg in r["Tags"]) if m["Key"] == "Name"]  # fmt: skip
    assert len(names) > 300
    for name in names:
        low = name.lower()
        assert not any(t in low for t in teams), name


def test_tagging_api_lists_only_tagged_resources_and_unowned_carry_no_owner_tag(mid):
    out, summary, org, records, truth = mid
    bundle = out / "bundle"
    listed = {m["ResourceARN"]: {t["Key"]: t["Value"] for t in m["Tags"]}
              for m in json.loads((bundle / "resources.json").read_text())["ResourceTagMappingList"]}  # fmt: skip
    by_arn = {r.arn: r for r in org.resources}
    for t in truth:
        if t["tagged"] == "1":
            assert listed[t["arn"]][t["tag_key"]] == t["tag_value"]
        elif t["arn"] in listed:  # only non-owner tags (Name, env)
            assert not OWNER_TAG_KEYS & set(listed[t["arn"]])
        if not by_arn[t["arn"]].tags:
            assert t["arn"] not in listed
    untagged = [t for t in truth if t["arn"] not in listed]
    assert len(untagged) > 0.3 * len(truth)
    for t in truth:
        if t["team"] == UNOWNED:
            assert t["tagged"] == "0"
            assert not OWNER_TAG_KEYS & set(listed.get(t["arn"], {}))
    # CUR shows only the activated key, and never on unowned resources
    unowned_ids = {arn for arn, r in by_arn.items() if r.team == UNOWNED}
    for row in _cur_rows(bundle):
        arn = arn_from_billing_id(row["line_item_resource_id"], row["product_region_code"],
                                  row["line_item_usage_account_id"], row["line_item_product_code"])  # fmt: skip
        if arn in unowned_ids:
            assert row["resource_tags"] == ""


def test_resource_ids_in_every_source_are_truth_arns(mid):
    out, summary, org, records, truth = mid
    bundle = out / "bundle"
    arns = {t["arn"] for t in truth}
    seen: set[str] = set()
    for rec in records:
        got = _ids(rec)
        assert got, rec["eventName"]
        assert got <= arns, (rec["eventName"], got - arns)
        seen |= got
    active = {r.arn for r in org.resources if r.kind != "orphan"}
    assert len(seen & active) > 0.9 * len(active)
    assert not seen & {r.arn for r in org.resources if r.kind == "orphan"}

    billed = set()
    for row in _cur_rows(bundle):
        if row["line_item_resource_id"]:
            arn = arn_from_billing_id(row["line_item_resource_id"], row["product_region_code"],
                                      row["line_item_usage_account_id"], row["line_item_product_code"])  # fmt: skip
            assert arn in arns, row
            billed.add(arn)
    assert {r.arn for r in org.resources if r.kind == "orphan"} <= billed
    raw_ids = {row["line_item_resource_id"] for row in _cur_rows(bundle)}
    assert any(x.startswith("i-") for x in raw_ids) and any(x.startswith("arn:aws:lambda:") for x in raw_ids)

    enis = json.loads((bundle / "network.json").read_text())["NetworkInterfaces"]
    mapped = 0
    for e in enis:
        region, acct = e["AvailabilityZone"][:-1], e["OwnerId"]
        arn = None
        if "Attachment" in e:
            arn = build_arn("ec2:instance", e["Attachment"]["InstanceId"], region, acct)
        elif e["InterfaceType"] == "lambda":
            name = e["Description"].removeprefix("AWS Lambda VPC ENI-").rsplit("-", 5)[0]
            arn = build_arn("lambda:function", name, region, acct)
        elif e["Description"].startswith("RDSNetworkInterface "):
            arn = build_arn("rds:db", e["Description"].split(" ", 1)[1], region, acct)
        elif any(t["Key"] == "aws:ecs:serviceName" for t in e["TagSet"]):
            tags = {t["Key"]: t["Value"] for t in e["TagSet"]}
            arn = build_arn(
                "ecs:service", f"{tags['aws:ecs:clusterName']}/{tags['aws:ecs:serviceName']}", region, acct
            )
        elif e["Description"].startswith("ELB "):
            arn = build_arn("elasticloadbalancing:loadbalancer", e["Description"][4:], region, acct)
        if arn:
            assert arn in arns, e
            mapped += 1
    assert mapped == sum(1 for e in enis if e["InterfaceType"] != "nat_gateway")
    for line in (bundle / "deploys.jsonl").read_text().splitlines():
        assert set(json.loads(line)["resources"]) <= arns


# ------------------------------------------------------------------------------------------------
# hard cases, measured on the written CloudTrail


def _calls_by_resource(records: list[dict], org) -> dict[str, list[tuple[str | None, dict]]]:
    out: dict[str, list[tuple[str | None, dict]]] = defaultdict(list)
    for rec in records:
        team = _caller_team(rec, org)
        for arn in _ids(rec):
            out[arn].append((team, rec))
    return out


def test_shared_services_are_mostly_called_by_other_teams(mid):
    out, summary, org, records, truth = mid
    calls = _calls_by_resource(records, org)
    shares = []
    for r in org.resources:
        if r.kind != "shared_service":
            continue
        teams = Counter(t for t, _ in calls[r.arn] if t)
        total = sum(teams.values())
        if total < 20:
            continue
        owner = teams[r.team] / total
        shares.append(owner)
        assert owner < 0.5, (r.name, teams)
        if total >= 60:
            assert max(teams, key=teams.get) != r.team  # a naive "who calls most" vote gets it wrong
        assert set(teams) - {r.team} <= set(r.others)
    assert len(shares) >= 5


def test_other_hard_kinds_behave_as_documented(mid):
    out, summary, org, records, truth = mid
    calls = _calls_by_resource(records, org)
    vendor_role = "DatadogIntegrationRole"
    checked = Counter()
    cross = [0, 0]  # calls by owners, calls by the other team
    for r in org.resources:
        got = calls.get(r.arn, [])
        teams = Counter(t for t, _ in got if t)
        if r.kind == "orphan":
            assert not got
        elif r.kind == "sparse":
            assert 1 <= len(got) <= 3, (r.name, len(got))
            assert set(teams) <= {r.team}
        elif r.kind == "vendor":
            assert got and all(rec["userIdentity"]["accountId"] == "999999999999" and
                               rec["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] == vendor_role
                               for _, rec in got)  # fmt: skip
        elif r.kind == "abandoned":
            assert not teams
        elif r.kind == "sso_only":
            for team, rec in got:
                role = (
                    rec["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("userName", "")
                )
                if team:
                    assert role.startswith("AWSReservedSSO_") and team == r.team
        elif r.kind == "cross_team":
            assert set(teams) <= {r.team, r.others[0]}
            cross[0] += teams[r.team]
            cross[1] += teams[r.others[0]]
            if sum(teams.values()) >= 100:
                assert teams[r.others[0]] >= 0.5 * teams[r.team], (r.name, teams)
        elif r.kind == "reassigned":
            switch = org.params.epoch + r.switch_hour * 3600
            for team, rec in got:
                if team is None:
                    continue
                t = rec["eventTime"]
                ts = time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
                assert team == (r.prev_team if ts < switch else r.team), (r.name, team, t)
            checked["reassigned"] += 1
        if r.kind == "clean" and sum(teams.values()) >= 20:
            assert max(teams, key=teams.get) == r.team
    assert checked["reassigned"] >= 3
    assert cross[1] >= 0.9 * cross[0] > 0  # the other team calls about as much as the owner, or more


def test_people_share_one_sso_role_and_sessions_name_them(mid):
    out, summary, org, records, truth = mid
    sso = Counter()
    for rec in records:
        ui = rec["userIdentity"]
        role = ui.get("sessionContext", {}).get("sessionIssuer", {}).get("userName", "")
        if role.startswith("AWSReservedSSO_"):
            session = ui["arn"].rsplit("/", 1)[-1]
            assert session in org.people_team
            sso[(ui["accountId"], role.split("_")[1])] += 1
    teams_seen = {org.people_team[rec["userIdentity"]["arn"].rsplit("/", 1)[-1]] for rec in records
                  if rec["userIdentity"].get("arn", "").split("/")[1:2] and
                  rec["userIdentity"]["arn"].split("/")[1].startswith("AWSReservedSSO_")}  # fmt: skip
    assert len(teams_seen) == MID["teams"]
    assert len({role for _, role in sso}) == 2  # PowerUserAccess and ReadOnlyAccess


def test_cost_follows_activity_and_leaves_some_spend_unattributed(mid):
    out, summary, org, records, truth = mid
    rows = _cur_rows(out / "bundle")
    empty = sum(float(r["line_item_unblended_cost"]) for r in rows if not r["line_item_resource_id"])
    total = sum(float(r["line_item_unblended_cost"]) for r in rows)
    assert 0 < empty < 0.5 * total
    assert {r["line_item_line_item_type"] for r in rows} >= {"Usage", "Tax"}
    # a Lambda's cost is its calls: the same price per call in every hour
    lam = {r.arn for r in org.resources if r.rtype == "lambda" and r.kind != "sparse"}
    calls = Counter()
    for rec in records:
        for arn in _ids(rec) & lam:
            calls[(arn, rec["eventTime"][:13])] += 1
    cost = defaultdict(float)
    for r in rows:
        if r["line_item_product_code"] == "AWSLambda" and r["line_item_resource_id"] in lam:
            cost[(r["line_item_resource_id"], r["line_item_usage_start_date"][:13])] += float(
                r["line_item_unblended_cost"]
            )
    assert set(cost) == set(calls)
    busiest = max(lam, key=lambda a: sum(v for k, v in calls.items() if k[0] == a))
    ratios = [cost[k] / calls[k] for k in calls if k[0] == busiest]
    assert len(ratios) > 10 and max(ratios) - min(ratios) < 1e-6


# ------------------------------------------------------------------------------------------------
# scale


@pytest.mark.slow
def test_two_thousand_resources_in_reasonable_time(tmp_path: Path):
    t = time.perf_counter()
    s = generate(
        tmp_path, seed=5, teams=10, resources_per_team=200, days=3, events_per_resource_day=10.0, workers=2
    )
    elapsed = time.perf_counter() - t
    assert s.resources == 2000 and s.events > 5000
    assert elapsed < 30, elapsed
    with open(tmp_path / "truth.csv", newline="") as f:
        assert sum(1 for _ in csv.DictReader(io.StringIO(f.read()))) == 2000


def test_every_event_template_renders_valid_json():
    from engine.synth.writers import build_catalogue, principal_pieces, resource_fields

    org = build_org(OrgParams(seed=1, teams=4, resources_per_team=30, days=2))
    cat, fields = build_catalogue(), resource_fields(org)
    heads, mids = principal_pieces(org)
    one = {}
    for r in org.resources:
        one.setdefault(r.rtype, r.idx)
    for tj, (rtype, name) in enumerate(cat.names):
        f = fields[one[rtype]]
        for body in (cat.body, cat.errbody):
            for p in range(len(heads)):
                rec = (heads[p] + b"2026-11-01T00:00:00" + cat.head[tj * cat.nreg] + mids[p] + body[tj] % f + b"r"
                       + b'","eventID":"e' + cat.tail[tj] % f)  # fmt: skip
                assert json.loads(rec)["eventName"] == name
