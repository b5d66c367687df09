"""deploys.jsonl reader."""

from __future__ import annotations

import gzip
import json

from engine.records import BundleIssue
from engine.sources.deploys import read_deploys


def test_costdna_synthetic_seed0_deploys(shared_data):
    path = shared_data / "costdna-synthetic/seed0/bundle/deploys.jsonl"
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    issues: list[BundleIssue] = []
    deploys = read_deploys(path, issues)
    assert issues == []
    assert len(deploys) == len(lines) == 106
    first = json.loads(lines[0])
    d = deploys[0]
    assert (d.repo, d.commit, d.actor, d.pipeline) == (first["repo"], first["commit"], first["actor"], first["pipeline"])
    assert d.time == 1794171478.0  # 2026-11-08T20:57:58Z
    assert d.resources == () and d.hints == ()


def test_hints_and_resolved_arns(tmp_path):
    recs = [
        {"time": "2024-01-01T00:00:00Z", "repo": "api", "service": "checkout",
         "resources": ["arn:aws:lambda:us-east-1:1:function:f:live", "i-0abc"], "target": "arn:aws:s3:::site/index.html"},
        {"time": "2024-01-01T01:00:00+01:00", "repo": "web", "resource_arn": "arn:aws:ecs:us-east-1:1:service/c/s",
         "services": ["a", "b", 3], "commit": 12},
    ]
    path = tmp_path / "deploys.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    a, b = read_deploys(path, [])
    assert a.resources == ("arn:aws:lambda:us-east-1:1:function:f", "arn:aws:s3:::site")
    assert a.hints == ("arn:aws:lambda:us-east-1:1:function:f:live", "i-0abc", "checkout", "arn:aws:s3:::site/index.html")
    assert b.time == a.time and b.commit == ""
    assert b.resources == ("arn:aws:ecs:us-east-1:1:service/c/s",) and b.hints[1:] == ("a", "b")


def test_bad_lines_are_skipped_with_their_number(tmp_path):
    body = "\n".join([
        '{"time": "2024-01-01T00:00:00Z", "repo": "ok"}',
        '{"time": "2024-01-01T00:00:00Z", "repo": ',
        '{"repo": "no-time"}',
        '{"time": "yesterday", "repo": "x"}',
        '{"time": "2024-01-01T00:00:00Z"}',
        '["a list"]',
        "",
        '{"time": 1700000000, "repo": "epoch"}',
    ])
    path = tmp_path / "deploys.jsonl.gz"
    path.write_bytes(gzip.compress(body.encode()))
    issues: list[BundleIssue] = []
    deploys = read_deploys(path, issues)
    assert [d.repo for d in deploys] == ["ok", "epoch"]
    assert [(i.location, i.message.split(" (")[0]) for i in issues] == [
        ("line 2", "not valid JSON"),
        ("line 3", "time is missing"),
        ("line 4", "time 'yesterday' is not ISO 8601"),
        ("line 5", "repo is missing"),
        ("line 6", "not a JSON object"),
    ]


def test_truncated_gzip_is_one_issue(tmp_path):
    data = gzip.compress(b'{"time": "2024-01-01T00:00:00Z", "repo": "r"}\n' * 5000)
    path = tmp_path / "deploys.jsonl"
    path.write_bytes(data[: len(data) // 2])
    issues: list[BundleIssue] = []
    assert read_deploys(path, issues) == []
    assert [(i.location, i.message) for i in issues] == [("", "truncated gzip stream")]
