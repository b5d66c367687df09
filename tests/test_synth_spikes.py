"""The generator plants what the watch must find: spikes with and without a cause, rhythms, cold starts.

Checks read the written files with the standard library (as the benchmark's ground truth is read) and
rebuild the organisation model only to know who is who.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.arns import arn_from_billing_id
from engine.synth import OrgParams, build_org, generate
from engine.synth.writers import SPIKES_TRUTH_COLUMNS

ORG = dict(teams=5, resources_per_team=40, days=8, events_per_resource_day=10.0)
SEED = 11


def _ts(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    """(out dir, spikes truth rows, hourly cost per arn {hour epoch: $}, deploys, CloudTrail records, org)."""
    out = tmp_path_factory.mktemp("spikes")
    generate(out, seed=SEED, workers=2, **ORG)
    with open(out / "spikes_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cost: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for p in sorted((out / "bundle" / "cost").rglob("*.csv.gz")):
        with gzip.open(p, "rt", newline="") as f:
            for r in csv.DictReader(f):
                if r["line_item_resource_id"]:
                    arn = arn_from_billing_id(r["line_item_resource_id"], r["product_region_code"],
                                              r["line_item_usage_account_id"], r["line_item_product_code"])  # fmt: skip
                    cost[arn][_ts(r["line_item_usage_start_date"])] += float(r["line_item_unblended_cost"])
    deploys = [json.loads(x) for x in (out / "bundle" / "deploys.jsonl").read_text().splitlines()]
    records = []
    for p in sorted((out / "bundle" / "cloudtrail").rglob("*.json.gz")):
        with gzip.open(p, "rt") as f:
            records += json.load(f)["Records"]
    org = build_org(OrgParams(seed=SEED, **ORG))
    return out, rows, cost, deploys, records, org


def test_truth_file_lists_every_kind(synth):
    out, rows, *_ = synth
    with open(out / "spikes_truth.csv", newline="") as f:
        assert tuple(next(csv.reader(f))[:8]) == SPIKES_TRUTH_COLUMNS[:8] == (
            "arn", "kind", "start", "end", "owner_team", "cause_commit", "cause_repo", "cause_actor")  # fmt: skip
    kinds = {r["kind"] for r in rows}
    assert {"deploy", "nocause", "coldstart", "rhythm"} <= kinds <= {"deploy", "nocause", "coldstart", "rhythm", "shift"}
    with open(out / "truth.csv", newline="") as f:
        truth = {r["arn"]: r for r in csv.DictReader(f)}
    for r in rows:
        assert r["arn"] in truth
        assert r["owner_team"] == truth[r["arn"]]["team"]
        if r["kind"] == "rhythm":
            assert r["start"] == r["end"] == ""
        else:
            assert _ts(r["start"]) < _ts(r["end"])
            assert r["start"].endswith(":00:00Z")


def test_deploy_spike_follows_a_deploy_that_names_it(synth):
    _, rows, _, deploys, records, org = synth
    ci_roles = {t.ci_role: t.name for t in org.teams}
    spikes = [r for r in rows if r["kind"] == "deploy"]
    assert spikes
    for s in spikes:
        start = _ts(s["start"])
        lines = [d for d in deploys if d["commit"] == s["cause_commit"]]
        assert len(lines) == 1
        d = lines[0]
        assert s["arn"] in d["resources"] and d["repo"] == s["cause_repo"] and d["actor"] == s["cause_actor"]
        assert start - 3 * 3600 <= _ts(d["time"]) < start  # 0-3 h before the jump
        team = ci_roles.get(d["actor"]) or org.people_team.get(d["actor"])
        assert team == s["owner_team"]  # the owning team deployed it
        assert s["cause_repo"] in org.by_name[s["owner_team"]].repos
        # no other deploy names the resource in the day before the jump
        assert not [x for x in deploys if s["arn"] in x["resources"] and x["commit"] != d["commit"]
                    and start - 86400 <= _ts(x["time"]) < _ts(s["end"])]  # fmt: skip


def test_nocause_spike_has_only_unrelated_deploys_around(synth):
    _, rows, _, deploys, _, org = synth
    spikes = [r for r in rows if r["kind"] == "nocause"]
    assert spikes
    decoys = 0
    for s in spikes:
        start = _ts(s["start"])
        assert not s["cause_commit"] and not s["cause_repo"]
        near = [d for d in deploys if start - 86400 <= _ts(d["time"]) < _ts(s["end"])]
        assert not [d for d in near if s["arn"] in d["resources"]]
        others = [d for d in near if start - 3 * 3600 <= _ts(d["time"]) < start
                  and d["repo"] not in org.by_name[s["owner_team"]].repos]  # fmt: skip
        decoys += bool(others)
    assert decoys >= 1


def test_spike_cost_jumps_at_least_2x(synth):
    _, rows, cost, *_ = synth
    for s in rows:
        if s["kind"] not in ("deploy", "nocause"):
            continue
        series = cost[s["arn"]]
        start, end = _ts(s["start"]), _ts(s["end"])
        before = [series.get(start - k * 3600, 0.0) for k in range(1, 25)]
        during = [series.get(start + k * 3600, 0.0) for k in range(int((end - start) // 3600))]
        base = sum(before) / len(before)
        assert base > 0
        assert min(during) >= 2 * max(before), (s["arn"], before, during)
        assert sum(during) / len(during) - base >= 0.9  # material: about a dollar an hour or more
        assert series.get(end, 0.0) < 2 * max(before) or end >= max(series)  # it ends (or runs to the end)


def test_coldstart_is_a_runinstances_by_an_engineer_through_shared_sso(synth):
    _, rows, cost, _, records, org = synth
    colds = [r for r in rows if r["kind"] == "coldstart"]
    assert colds
    for s in colds:
        iid = s["arn"].rsplit("/", 1)[-1]
        runs = [x for x in records if x["eventName"] == "RunInstances"
                and any(i["instanceId"] == iid for i in x["responseElements"]["instancesSet"]["items"])]  # fmt: skip
        assert len(runs) == 1
        rec = runs[0]
        ui = rec["userIdentity"]
        assert ui["type"] == "AssumedRole"
        assert ui["sessionContext"]["sessionIssuer"]["userName"].startswith("AWSReservedSSO_")
        email = ui["arn"].rsplit("/", 1)[-1]
        assert email == s["cause_actor"] and "@" in email
        assert org.people_team[email] == s["owner_team"]
        itype = rec["requestParameters"]["instanceType"]
        assert itype.split(".")[0] in ("p3", "p4d", "g5", "m5")
        # billed from its launch hour at its on-demand price, nothing before
        series = cost[s["arn"]]
        first = min(series)
        launch = _ts(rec["eventTime"])
        assert first == _ts(s["start"]) and first <= launch < first + 3600
        assert series[first] >= 3.0
        # only evidence: the creation event (untagged)
        assert sum(1 for x in records if iid in json.dumps([x["requestParameters"], x["responseElements"]])) == 1
    tagged = {m["ResourceARN"] for m in json.loads((synth[0] / "bundle" / "resources.json").read_text())
              ["ResourceTagMappingList"]}  # fmt: skip
    assert not tagged & {s["arn"] for s in colds}


def test_rhythms_repeat_from_the_first_day(synth):
    out, rows, cost, *_ = synth
    rhythms = [r for r in rows if r["kind"] == "rhythm"]
    assert rhythms
    start = _ts("2026-11-01T00:00:00Z")
    nightly = 0
    for s in rhythms:
        series = cost[s["arn"]]
        days = [start + d * 86400 for d in range(ORG["days"])]
        ratios = [series.get(d + 2 * 3600, 0) / max(series.get(d + 12 * 3600, 0), 1e-9) for d in days]
        if min(ratios) >= 4:  # 01:00-03:59 UTC, every night including the first
            nightly += 1
        else:  # weekly: the first day's weekday (Sunday here), from the first day on
            same = [d for d in days if datetime.fromtimestamp(d, UTC).weekday() == 6]
            assert len(same) == 2 and all(series.get(d + 8 * 3600, 0) >= 4 * series.get(d + 16 * 3600, 0)
                                          for d in same)  # fmt: skip
            assert all(series.get(d + 8 * 3600, 0) < 2 * series.get(d + 16 * 3600, 0) for d in days if d not in same)
    assert nightly >= 1


def test_same_seed_same_bytes(tmp_path: Path):
    small = dict(teams=3, resources_per_team=12, days=4, events_per_resource_day=5.0)
    generate(tmp_path / "a", seed=5, workers=1, **small)
    generate(tmp_path / "b", seed=5, workers=2, **small)
    for name in ("spikes_truth.csv", "truth.csv", "bundle/deploys.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    cur = sorted((tmp_path / "a" / "bundle" / "cost").rglob("*.gz"))
    assert cur and all(hashlib.sha256(p.read_bytes()).digest()
                       == hashlib.sha256((tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()).digest()
                       for p in cur)  # fmt: skip
    assert len((tmp_path / "a" / "spikes_truth.csv").read_text().splitlines()) > 3


def test_org_is_unchanged_apart_from_the_plants():
    """Planting runs last with its own RNG: the same resources keep their names and owners."""
    org = build_org(OrgParams(seed=3, teams=4, resources_per_team=30, days=10))
    cold = {s.res for s in org.spikes if s.kind == "coldstart"}
    assert len(org.resources) == 120 and cold
    assert {org.resources[i].kind for i in cold} == {"sparse"}
    assert all(org.resources[i].rtype == "ec2" and not org.resources[i].tags for i in cold)
    assert len({(s.res) for s in org.spikes}) == len(org.spikes)  # one planted spike per resource
    assert not {s.res for s in org.spikes} & {r.res for r in org.rhythms}
    assert timedelta(hours=org.params.hours) == timedelta(days=10)
