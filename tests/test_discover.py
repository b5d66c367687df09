"""engine.collectors.discover, `costdna discover` and `/costdna discover`: teams proposed from owner tags, IAM
role names and IAM Identity Center permission sets, with their evidence; platform and vendor roles left out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.bundle import load_bundle
from engine.collectors.discover import discover, sso_set_of, team_from_role_name, team_from_sso_set

ACCT = "111122223333"
# The synthetic generator's platform, security and vendor roles (engine.synth.org): never a team.
SYNTH_NOISE = ("cloud-custodian", "backup-runner", "security-hub-scanner", "DatadogIntegrationRole", "breakglass-admin")


# -- names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, team", [
    ("payments-ci", "payments"),
    ("payments-api", "payments"),
    ("checkout-api-prod", "checkout"),
    ("svc-fraud-scoring", "fraud"),
    ("gha-search-deployer", "search"),
    ("team-growth-admin", "growth"),
    ("Payments_Team-deploy", "payments"),
])
def test_role_name_patterns(name: str, team: str) -> None:
    assert team_from_role_name(name)[0] == team


@pytest.mark.parametrize("name", [
    "cloud-custodian", "backup-runner", "security-hub-scanner", "DatadogIntegrationRole", "breakglass-admin",
    "AWSServiceRoleForECS", "OrganizationAccountAccessRole", "AWSReservedSSO_PowerUserAccess_0123456789abcdef",
    "cdk-hnb659fds-deploy-role-111122223333-us-east-1", "stacksets-exec-0a1b2c", "ecsTaskExecutionRole",
    "lambda-exec", "terraform", "admin",
])
def test_platform_vendor_and_plain_names_give_no_team(name: str) -> None:
    assert team_from_role_name(name)[0] is None


def test_known_teams_win_with_dashes_in_their_names() -> None:
    assert team_from_role_name("svc-data-platform-etl", {"data-platform"})[0] == "data-platform"
    assert team_from_role_name("svc-data-platform-etl")[0] == "data"  # svc-<team>-…: the first word


def test_permission_sets() -> None:
    assert sso_set_of("AWSReservedSSO_FraudDevelopers_0123456789abcdef") == "FraudDevelopers"
    assert sso_set_of("AWSReservedSSO_data_platform_admins_89ab0123cdef4567") == "data_platform_admins"
    assert sso_set_of("payments-ci") is None
    assert team_from_sso_set("FraudDevelopers") == "fraud"
    assert team_from_sso_set("data_platform_admins") == "data-platform"
    assert team_from_sso_set("Search-Engineers") == "search"
    for shared in ("PowerUserAccess", "ReadOnlyAccess", "AdministratorAccess", "SecurityAudit", "ViewOnlyAccess",
                   "Billing"):
        assert team_from_sso_set(shared) is None, shared


# -- a synthetic organisation ------------------------------------------------------------------------


def test_synthetic_org_teams_are_proposed_and_noise_roles_are_not(tiny_org: Path, tiny_bundle) -> None:
    with open(tiny_org / "truth.csv", newline="") as f:
        truth = {r["team"] for r in csv.DictReader(f)} - {"unowned"}
    assert len(truth) == 4
    d = discover(tiny_bundle)
    high = {t.team for t in d.teams if t.confidence == "high"}
    assert truth <= high  # every real team, backed by tags and behaviour
    by_team = {t.team: t for t in d.teams}
    for team in truth:
        t = by_team[team]
        assert t.tagged_resources > 0 and t.roles and t.people
        kinds = {e.kind for e in t.evidence}
        assert {"tag", "role_activity", "people"} <= kinds
        assert all(e.count > 0 and e.detail for e in t.evidence)
    # The roles credited to a team are its own (engine.synth: a team's service and CI roles).
    every_role = [r for t in d.teams for r in t.roles]
    assert len(every_role) == len(set(every_role))  # one team per role
    names = {t.team for t in d.teams}
    ignored = {p.split(":", 1)[1] for p, _ in d.ignored}
    for noise in SYNTH_NOISE:
        assert noise in ignored, noise
        assert not any(noise in r for r in every_role)
        assert not any(w in n for n in names for w in ("custodian", "backup", "security", "datadog", "breakglass"))
    # Shared permission sets are not teams either, and are said to be shared.
    assert any("PowerUserAccess" in p and "shared permission set" in why for p, why in d.ignored)
    assert not any("poweruser" in n or "readonly" in n for n in names)
    # Anything else proposed is a guess from a name only, and says so.
    for t in d.teams:
        if t.team not in truth:
            assert t.confidence == "low" and not t.tagged_resources
    json.dumps(d.as_dict())  # serialisable as it is


# -- a hand-made account: role names and permission sets named after teams ---------------------------


def _role(name: str, path: str = "/") -> dict:
    return {"Path": path, "RoleName": name, "RoleId": "AROA" + name.upper().replace("-", "")[:16].ljust(16, "X"),
            "Arn": f"arn:aws:iam::{ACCT}:role{path}{name}", "CreateDate": "2026-01-01T00:00:00Z",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
            "RolePolicyList": [], "AttachedManagedPolicies": [], "Tags": []}


def _call(role: str, session: str, table: str, n: int) -> list[dict]:
    return [{
        "eventVersion": "1.08", "eventTime": f"2026-11-02T10:{i % 60:02d}:00Z", "eventSource": "dynamodb.amazonaws.com",
        "eventName": "DescribeTable", "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
        "userAgent": "aws-cli/2", "requestParameters": {"tableName": table}, "responseElements": None,
        "eventID": f"{role}-{session}-{table}-{i}", "readOnly": True, "recipientAccountId": ACCT,
        "userIdentity": {
            "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCT}:assumed-role/{role}/{session}", "accountId": ACCT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role,
                                                 "arn": f"arn:aws:iam::{ACCT}:role/{role}", "accountId": ACCT}},
        },
    } for i in range(n)]


def _table(name: str) -> str:
    return f"arn:aws:dynamodb:us-east-1:{ACCT}:table/{name}"


@pytest.fixture
def handmade(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    (b / "cloudtrail").mkdir(parents=True)
    roles = ["payments-ci", "payments-api", "svc-checkout-orders", "gha-search-deployer", "search-api-prod",
             "ledger-worker", "cloud-custodian", "DatadogIntegrationRole", "ecsTaskExecutionRole"]
    iam = {"RoleDetailList": [_role(r) for r in roles]
           + [_role("AWSServiceRoleForECS", "/aws-service-role/ecs.amazonaws.com/"),
              _role("OrganizationAccountAccessRole")],
           "UserDetailList": [], "GroupDetailList": [], "Policies": []}
    (b / "iam.json").write_text(json.dumps(iam))
    tags = {"payments-ledger": [("team", "Payments Team")], "payments-refunds": [("owner", "payments-eng")],
            "payments-payouts": [("team", "payments")], "fraud-scores": [], "shared-config": [("team", "n/a")]}
    (b / "resources.json").write_text(json.dumps({"ResourceTagMappingList": [
        {"ResourceARN": _table(t), "Tags": [{"Key": k, "Value": v} for k, v in kv]} for t, kv in tags.items()]}))
    records = (
        _call("ledger-worker", "i-0abc", "payments-ledger", 5)  # a service role: its name is no team
        + _call("ledger-worker", "i-0abc", "payments-refunds", 3)
        + _call("AWSReservedSSO_FraudDevelopers_0123456789abcdef", "ana@corp.example", "fraud-scores", 4)
        + _call("AWSReservedSSO_FraudDevelopers_0123456789abcdef", "bo@corp.example", "fraud-scores", 2)
        + _call("AWSReservedSSO_PowerUserAccess_89ab0123cdef4567", "cy@corp.example", "payments-payouts", 2)
        + _call("cloud-custodian", "custodian", "payments-ledger", 3)
        + _call("cloud-custodian", "custodian", "fraud-scores", 3)
    )
    (b / "cloudtrail" / "events.json").write_text(json.dumps({"Records": records}))
    return b


def test_handmade_account(handmade: Path) -> None:
    bundle = load_bundle(handmade, workers=1)
    assert not bundle.issues
    d = discover(bundle)
    by = {t.team: t for t in d.teams}
    assert set(by) == {"payments", "fraud", "search", "checkout"}

    pay = by["payments"]
    assert pay.confidence == "high" and pay.tagged_resources == 3
    assert pay.tag_values == ["Payments Team", "payments", "payments-eng"]
    assert sorted(pay.roles) == ["role:ledger-worker", "role:payments-api", "role:payments-ci"]
    ev = {(e.kind, e.value): e for e in pay.evidence}
    assert ev[("tag", "team=Payments Team")].count == 1
    assert ev[("role_name", "payments-ci")].detail.startswith("role:payments-ci is named after payments")
    assert ev[("role_activity", "ledger-worker")].count == 2  # acts on 2 resources tagged payments

    fraud = by["fraud"]  # named by a permission set only: its people are its evidence too
    assert fraud.sso_sets == ["FraudDevelopers"] and fraud.confidence == "medium" and not fraud.tagged_resources
    assert [e.count for e in fraud.evidence if e.kind == "sso"] == [1]  # one resource acted on

    search = by["search"]  # two roles named after it, nothing else: a guess for a person to confirm
    assert sorted(search.roles) == ["role:gha-search-deployer", "role:search-api-prod"]
    assert search.confidence == "low"
    assert by["checkout"].roles == ["role:svc-checkout-orders"] and by["checkout"].confidence == "low"
    assert [t.team for t in d.teams][0] == "payments"  # best supported first

    ignored = dict(d.ignored)
    assert ignored["role:cloud-custodian"].startswith("platform or vendor role")
    assert ignored["role:DatadogIntegrationRole"].startswith("platform or vendor role")
    assert ignored["role:AWSServiceRoleForECS"] == "AWS-managed role"
    assert ignored["role:OrganizationAccountAccessRole"] == "AWS-managed role"
    assert "shared permission set PowerUserAccess" in ignored["role:AWSReservedSSO_PowerUserAccess_89ab0123cdef4567"]
    assert "role:ecsTaskExecutionRole" in ignored
    assert "ledger" not in by  # a service word, credited to the team whose resources it works on


def test_an_account_with_nothing_to_go_on(tmp_path: Path) -> None:
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "resources.json").write_text(json.dumps({"ResourceTagMappingList": [
        {"ResourceARN": _table("x"), "Tags": [{"Key": "env", "Value": "prod"}]}]}))
    d = discover(load_bundle(b, workers=1))
    assert d.teams == [] and d.resources == 1 and d.tagged_resources == 0


# -- the CLI and the chat card ---------------------------------------------------------------------


@pytest.fixture
def runner(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return CliRunner(env=cli_env)


def test_cli_discover(runner: CliRunner, handmade: Path) -> None:
    from bot.cli import app

    res = runner.invoke(app, ["accounts", "add", "hand", "--bundle", str(handmade)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["discover", "--account", "hand", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["account"] == "hand" and [t["team"] for t in doc["teams"]][0] == "payments"
    assert {t["team"] for t in doc["teams"]} == {"payments", "fraud", "search", "checkout"}
    assert any(i["principal"] == "role:cloud-custodian" for i in doc["ignored"])
    res = runner.invoke(app, ["discover", "--account", "hand"])
    assert res.exit_code == 0, res.output
    assert "4 team(s) proposed for hand" in res.output and "payments" in res.output
    assert "cloud-custodian" in res.output  # listed as not a team
    res = runner.invoke(app, ["discover", "--account", "nope"])
    assert res.exit_code != 0 and "Traceback" not in res.output


async def test_chat_discover_card(handmade: Path, tmp_path: Path) -> None:
    from config.settings import Settings
    from handlers.commands import HELP, handle_command
    from handlers.context import Services, Who
    from jobs.worker import job_context
    from storage import repo

    data = tmp_path / "data"
    settings = Settings(data_dir=data, database_url=f"sqlite+aiosqlite:///{data / 'costdna.db'}", redis_url=None,
                        workers=1)
    ctx = await job_context(settings)
    try:
        async with ctx["db"].session() as s:
            await repo.add_account(s, "hand", "bundle", bundle_path=str(handmade), actor="test")
        svc = Services(db=ctx["db"], queue=None, settings=settings)
        who = Who(platform="slack", workspace="T1", user_id="U1")
        reply = await handle_command(svc, who, "discover")
        card = reply.posts[0].card
        text = card.text()
        assert card.title == "Teams proposed for hand" and card.kind == "summary"
        assert "*payments* _high_" in text and "*fraud* _medium_" in text and "`FraudDevelopers`" in text
        assert "Not teams:" in text and "`cloud-custodian`" in text
        assert "/costdna label" in text and "rewrites:" in text
        assert not card.buttons  # confirming is tagging: the card says how
        assert all(len(sec.text) <= 3000 for sec in card.sections)
        bad = (await handle_command(svc, who, "discover nope")).posts[0].card
        assert bad.kind == "error"
        assert any(cmd.startswith("`discover") for cmd, _ in HELP)
    finally:
        await ctx["db"].close()


test_chat_discover_card = pytest.mark.asyncio(test_chat_discover_card)
