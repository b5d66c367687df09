"""apply_tag_changes on an AWS account, against moto's server: an approved change set's tags land on
real (emulated) resources through the account's role, a deleted resource fails alone, rollback restores."""

from __future__ import annotations

import pytest

from config.settings import Settings
from jobs.notify import Fanout
from jobs.tasks import apply_tag_changes
from storage import repo
from storage.db import Database
from tests.test_aws_tags import Aws, aws, moto_url  # noqa: F401  (fixtures)

ROLE = "arn:aws:iam::123456789012:role/costdna-tagger"


@pytest.mark.asyncio
async def test_approved_change_set_is_written_to_aws_and_rolled_back(aws: Aws, sqlite_url, tmp_path):  # noqa: F811
    s3 = aws.client("s3")
    ddb = aws.client("dynamodb")
    s3.create_bucket(Bucket="orders-exports")
    s3.put_bucket_tagging(Bucket="orders-exports", Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]})
    s3.create_bucket(Bucket="gone-bucket")
    table = ddb.create_table(TableName="carts", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST")["TableDescription"]["TableArn"]
    s3.delete_bucket(Bucket="gone-bucket")
    bucket, gone = "arn:aws:s3:::orders-exports", "arn:aws:s3:::gone-bucket"

    settings = Settings(data_dir=tmp_path, database_url=sqlite_url, aws_endpoint_url=aws.url)
    events: list[str] = []

    async def seen(kind: str, **_: object) -> None:
        events.append(kind)

    db = await Database(sqlite_url).init()
    ctx = {"db": db, "settings": settings, "notify": Fanout(seen), "job_try": 1}
    try:
        async with db.session() as s:
            acct = await repo.add_account(s, "live", "aws", role_arn=ROLE, external_id="xid-1", regions=["us-east-1"])
            cs = await repo.propose_change_set(s, acct.id, [
                {"arn": bucket, "team": "orders", "previous_tags": {"env": "prod"}},
                {"arn": table, "team": "checkout", "previous_tags": {}},
                {"arn": gone, "team": "orders", "previous_tags": {}}])
            await repo.transition_change_set(s, cs.id, "approved", actor="U_APPROVER")
        out = await apply_tag_changes(ctx, cs.id)
        assert out["status"] == "applied" and out["done"] == 2 and out["failed"] == 1
        assert set(out["errors"]) == {gone}
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="orders-exports")["TagSet"]}
        assert tags == {"env": "prod", "team": "orders"}
        assert {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=table)["Tags"]} == {"team": "checkout"}
        async with db.session() as s:
            items = {i.arn: i for i in await repo.change_items(s, cs.id)}
            assert items[gone].status == "failed" and items[gone].error
            assert items[bucket].status == items[table].status == "applied"

        again = await apply_tag_changes(ctx, cs.id)  # a re-delivered job does nothing
        assert again.get("skipped")

        back = await apply_tag_changes(ctx, cs.id, rollback=True)
        assert back["status"] == "rolled_back" and back["done"] == 2
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="orders-exports")["TagSet"]}
        assert tags == {"env": "prod"}
        assert ddb.list_tags_of_resource(ResourceArn=table)["Tags"] == []
        async with db.session() as s:
            actions = [e.action for e in await repo.audit_entries(s, account_id=acct.id)]
        assert {"changeset.approved", "changeset.applied", "changeset.rolled_back"} <= set(actions)
        assert events == ["changeset.applied", "changeset.rolled_back"]
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_aws_tag_write_without_credentials_fails_every_item(sqlite_url, tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    db = await Database(sqlite_url).init()
    ctx = {"db": db, "settings": Settings(data_dir=tmp_path, database_url=sqlite_url), "notify": Fanout(),
           "job_try": 1}
    try:
        async with db.session() as s:
            acct = await repo.add_account(s, "live", "aws", role_arn=ROLE)
            cs = await repo.propose_change_set(s, acct.id, [{"arn": "arn:aws:s3:::b", "team": "x", "previous_tags": {}}])
            await repo.transition_change_set(s, cs.id, "approved", actor="U1")
        out = await apply_tag_changes(ctx, cs.id)
        assert out["status"] == "failed" and "no AWS credentials" in out["errors"]["arn:aws:s3:::b"]
    finally:
        await db.close()
