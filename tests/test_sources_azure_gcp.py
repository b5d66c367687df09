"""Azure and GCP files: Activity Log and Cloud Audit Log events, Azure EA/MCA cost exports, GCP's
billing export, and a bundle mixing them with AWS that scans.

The real samples are ``../shared/data/azure/activity-log``, ``gcp/audit-log`` and ``cost/azure-ea``
(see their README); GCP's billing export has no permissive real sample, so its files are written here
in the export's documented columns.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest

from engine.activity import CREATE, MANAGE, USE, Activity
from engine.bundle import load_bundle
from engine.records import BundleError, BundleIssue
from engine.sources import azure, gcp
from engine.sources.cost import COST_SCHEMA, cost_files, detect_format, read_cost_file

AZ_SUB1 = "69b51384-146c-4685-9dab-5ae01877d7b8"
AZ_SUB2 = "97e9b03f-04d6-4b69-b307-35f483f7ed81"
AZ_SUB3 = "c088dc46-d692-42ad-a4b6-9a542d28ad2a"
GCP_PROJECT = "test-project-hkhalifa"
VM5 = f"//compute.googleapis.com/projects/{GCP_PROJECT}/zones/us-central1-a/instances/vm5"
VM1 = f"//compute.googleapis.com/projects/{GCP_PROJECT}/zones/us-central1-a/instances/vm1"


def _azure_samples(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "azure/activity-log").rglob("*.json"))


def _gcp_samples(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "gcp/audit-log").rglob("*.jsonl"))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------
# Azure Activity Log


def test_azure_activity_log_samples(shared_data: Path) -> None:
    issues: list[BundleIssue] = []
    events = azure.read_azure_activity(_azure_samples(shared_data), issues)
    assert issues == []
    assert len(events) == 5  # 4 Dynatrace records + 1 SumoLogic record, none of one operation
    by_name = {ev.event_name: (ev, rel) for ev, rel in events}
    assert len(by_name) == 5  # operationName lower-cased: the exports write it in either case
    assert Counter(ev.principal for ev, _ in events) == {
        "user:jan.kowalski@somewhere.com": 1, "user:abc@itsumologic.onmicrosoft.com": 1,
        "sp:5418ef78-e938-44e9-8753-ae55b81a65a0": 1,
        "service:microsoft.insights": 1, "service:microsoft.resourcehealth": 1,
    }
    assert sorted(ev.person for ev, _ in events if ev.person) == [
        "abc@itsumologic.onmicrosoft.com", "jan.kowalski@somewhere.com"]

    # The administrative record: UPN in the claims, a failed listAccountSas (a read action: use).
    ev, rel = by_name["microsoft.storage/storageaccounts/listaccountsas/action"]
    assert ev.principal_type == "User" and rel == USE
    assert ev.resources == (f"/subscriptions/{AZ_SUB1}/resourcegroups/mw-gr1/providers/microsoft.storage/"
                            "storageaccounts/dtmwstorage1",)
    assert ev.error_code == "ResourceGroupNotFound"  # from properties.statusMessage's error.code
    assert ev.account == ev.recipient_account == AZ_SUB1
    assert ev.event_id == "3661e441-e836-4795-9148-c843525399bd" and ev.source_ip == "40.112.242.0"
    assert ev.event_source == "microsoft.storage"
    assert ev.time == pytest.approx(1612870711.631577)

    # The policy record: a service principal by its object id, the region from resourceLocation.
    ev, rel = by_name["microsoft.authorization/policies/audit/action"]
    assert ev.principal_type == "ServicePrincipal" and ev.person is None and rel == USE
    assert ev.region == "northeurope" and ev.account == AZ_SUB2 and ev.error_code is None
    assert ev.resources[0].endswith("/providers/microsoft.compute/virtualmachinescalesets/"
                                    "cb989d3e-4bcc-4abc-bc32-d1b6dfa2e6b0-azurebatch-vmss-d")

    # SumoLogic's legacy "Write" record: a config child stands for its site; a write that says
    # nothing about 201 Created manages.
    ev, rel = by_name["microsoft.web/sites/config/write"]
    assert rel == MANAGE and ev.region == "westus"
    assert ev.resources == (f"/subscriptions/{AZ_SUB3}/resourcegroups/testeventhublogs/providers/microsoft.web/"
                            "sites/sumoazureauditapp",)

    # Alert and ResourceHealth records: the platform, observing.
    for name in ("microsoft.insights/activitylogalerts/activated/action",
                 "microsoft.resourcehealth/healthevent/updated/action"):
        ev, rel = by_name[name]
        assert rel == USE and ev.principal_type == "AzureService" and ev.source_ip is None
    alerts = by_name["microsoft.insights/activitylogalerts/activated/action"][0]
    assert alerts.resources == (f"/subscriptions/{AZ_SUB1}/resourcegroups/dtmawo/providers/microsoft.insights/"
                                "activitylogalerts/aa - alert administracyjny",)
    for ev, _ in events:
        for rid in ev.resources:
            assert rid == rid.lower() and rid.startswith("/subscriptions/")


def _azure_record(**over: object) -> dict:
    rec = {
        "time": "2026-11-02T10:00:00.1234567Z",
        "resourceId": "/SUBSCRIPTIONS/11111111-2222-3333-4444-555555555555/RESOURCEGROUPS/PAY/PROVIDERS/"
                      "MICROSOFT.COMPUTE/VIRTUALMACHINES/PAY-VM-1",
        "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE",
        "category": "Administrative", "resultType": "Start", "correlationId": "AAAA-1",
        "identity": {"claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "Ana@Corp.Example"}},
        "location": "West Europe", "properties": {"statusCode": "Created"},
    }
    rec.update(over)
    return rec


def test_azure_one_operation_is_one_event_and_identities(tmp_path: Path) -> None:
    """Started + Succeeded of one operation (JSON lines, gzipped) are one create; a failed retry of
    another operation is one failed event; managed identities, REST-schema callers and {"value": []}."""
    lines = [
        _azure_record(),
        _azure_record(time="2026-11-02T10:00:30Z", resultType="Success"),
        _azure_record(correlationId="bbbb-2", operationName="Microsoft.Compute/virtualMachines/delete",
                      resultType="Failure", properties={"statusCode": "Conflict"}, time="2026-11-02T11:00:00Z"),
        _azure_record(correlationId="cccc-3", identity={"claims": {
            "xms_mirid": "/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/pay/providers/"
                         "Microsoft.ManagedIdentity/userAssignedIdentities/pay-ci",
            "appid": "0f0f0f0f-0000-0000-0000-000000000000"}}, properties={"statusCode": "OK"}),
    ]
    f1 = tmp_path / "azure-activity" / "y=2026/m=11/d=02/h=10/PT1H.json.gz"
    f1.parent.mkdir(parents=True)
    f1.write_bytes(gzip.compress(b"\n".join(orjson.dumps(r) for r in lines)))
    rest = {"value": [{
        "eventTimestamp": "2026-11-02T12:00:00Z", "caller": "9b2c7a43-0b0a-4e57-9d7f-6c4e3c2a1b00",
        "operationName": {"value": "Microsoft.Storage/storageAccounts/listKeys/action"},
        "status": {"value": "Succeeded"}, "category": {"value": "Administrative"},
        "resourceId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/pay/providers/"
                      "Microsoft.Storage/storageAccounts/paylogs/blobServices/default",
        "eventDataId": "dddd-4", "subscriptionId": "11111111-2222-3333-4444-555555555555",
        "httpRequest": {"clientIpAddress": "10.1.2.3"},
    }]}
    f2 = tmp_path / "azure-activity" / "rest.json"
    f2.write_text(json.dumps(rest))

    issues: list[BundleIssue] = []
    events = azure.read_azure_activity(azure.azure_activity_files(tmp_path), issues)
    assert issues == []
    assert len(events) == 4
    (keys, krel), (create, crel), (delete, drel), (mi, mrel) = events  # rest.json sorts first
    vm = "/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/pay/providers/microsoft.compute/" \
         "virtualmachines/pay-vm-1"
    assert crel == CREATE and create.resources == (vm,) and create.error_code is None
    assert create.principal == "user:ana@corp.example" and create.person == "ana@corp.example"
    assert create.region == "westeurope" and create.event_id == "aaaa-1"
    assert create.time == pytest.approx(1793613600.123457, abs=1e-3)  # the Started record's time
    assert drel == MANAGE and delete.error_code == "Conflict"
    assert mrel == MANAGE and mi.principal == ("mi:/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/"
                                                "pay/providers/microsoft.managedidentity/userassignedidentities/pay-ci")
    assert mi.principal_type == "ManagedIdentity" and mi.person is None
    assert krel == USE and keys.principal == "sp:9b2c7a43-0b0a-4e57-9d7f-6c4e3c2a1b00"
    assert keys.source_ip == "10.1.2.3" and keys.event_id == "dddd-4"
    assert keys.resources == ("/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/pay/providers/"
                              "microsoft.storage/storageaccounts/paylogs",)

    act = Activity()
    for ev, rel in events:
        act.add(ev, rel)
    assert act.creators[vm][1:] == ("user:ana@corp.example", "ana@corp.example")
    assert tuple(
        a for (arn, a, r) in act.pairs if arn == vm and r == CREATE) == ("user:ana@corp.example", "person:ana@corp.example")
    assert len(act.changes) == 3  # the create, the failed delete, the managed identity's write


@pytest.mark.parametrize(("raw", "want"), [
    ("/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.SQL/SERVERS/SQL1/DATABASES/DB1",
     "/subscriptions/s/resourcegroups/rg/providers/microsoft.sql/servers/sql1/databases/db1"),
    ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/ext",
     "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm"),
    ("/providers/Microsoft.Capacity/reservationOrders/49ED/reservations/",
     "/providers/microsoft.capacity/reservationorders/49ed"),
    ("/subscriptions/S//resourceGroups/RG/", "/subscriptions/s/resourcegroups/rg"),
    ("arn:aws:s3:::x", None), ("", None), (None, None),
])
def test_azure_resource_ids_are_normalized(raw: object, want: str | None) -> None:
    assert azure.normalize_resource_id(raw) == want


# ------------------------------------------------------------------------------------------------
# GCP Cloud Audit Logs


def test_gcp_audit_log_dftimewolf_sample(shared_data: Path) -> None:
    path = shared_data / "gcp/audit-log/dftimewolf/gcp-project-logs.jsonl"
    issues: list[BundleIssue] = []
    skipped = [0]
    entries = gcp.read_file(path, issues, skipped)
    assert issues == [] and skipped == [0]
    assert len(entries) == 98
    events = gcp.read_gcp_audit([path], issues)
    # 85 entries belong to long-running operations, logged first and last: 47 operations.
    assert sum(1 for _, _, op in entries if op) == 85
    assert len(events) == 98 - 85 + 47 == 60
    assert Counter(ev.principal for ev, _ in events) == {
        "user:user@dummy-domain.com": 46, "service:system@google.com": 9, "user:dianakramer@google.com": 3,
        "sa:latchkey-google-stage2-tag-automation@system.gserviceaccount.com": 2,
    }
    # The service account's delegation chain starts at a Google automation, not a person.
    assert {ev.person for ev, _ in events if ev.principal.startswith(("sa:", "service:"))} == {None}
    assert Counter(ev.error_code for ev, _ in events) == {None: 53, "NOT_FOUND": 7}
    assert Counter(rel for _, rel in events) == {MANAGE: 40, CREATE: 15, USE: 5}
    resources = {r for ev, _ in events for r in ev.resources}
    assert len(resources) == 32  # the README's 32 distinct resourceName
    assert VM5 in resources and VM1 in resources
    assert all(r.startswith(("//compute.googleapis.com/projects/", "//serviceusage.googleapis.com/projects/",
                             "//cloudresourcemanager.googleapis.com/projects/")) for r in resources)
    assert {ev.account for ev, _ in events} == {GCP_PROJECT}
    migrate = next(ev for ev, _ in events if ev.resources == (VM5,) and "migrate" in ev.event_name)
    assert migrate.event_id == "-ef6q7xe2y19o" and migrate.region == "us-central1"
    assert migrate.event_source == "compute.googleapis.com"


def test_gcp_audit_log_plaso_sample(shared_data: Path) -> None:
    path = shared_data / "gcp/audit-log/plaso/gcp_logging.jsonl"
    issues: list[BundleIssue] = []
    skipped = [0]
    assert len(gcp.read_file(path, issues, skipped)) == 9
    assert skipped == [2] and issues == []  # the jsonPayload and textPayload entries
    events = gcp.read_gcp_audit([path], issues)
    assert len(events) == 6
    by_principal = Counter(ev.principal for ev, _ in events)
    assert by_principal == {"user:fakeemailxyz@gmail.com": 4, "user:fake-account@fake-project.com": 1,
                            "sa:dvwa-service-account@ketchup.iam.gserviceaccount.com": 1}
    sa = next(ev for ev, _ in events if ev.principal.startswith("sa:"))
    assert sa.person is None  # delegated by another service account
    assert sa.principal_type == "ServiceAccount" and sa.account == "ketchup"
    denied = next(ev for ev, _ in events if ev.event_name == "google.iam.admin.v1.CreateServiceAccount"
                  and ev.error_code)
    assert denied.error_code == "PERMISSION_DENIED"
    assert {r for ev, _ in events for r in ev.resources} >= {
        "//compute.googleapis.com/projects/fake-project/global/networks/test",
        "//compute.googleapis.com/projects/fake-project/global/firewalls/test",
    }


def test_gcp_principals_and_names() -> None:
    assert gcp.principal_of_entry({"principalEmail": "Ana@Corp.Example"}) == ("user:ana@corp.example", "User",
                                                                              "ana@corp.example")
    assert gcp.principal_of_entry({
        "principalEmail": "deployer@p.iam.gserviceaccount.com",
        "serviceAccountDelegationInfo": [{"firstPartyPrincipal": {"principalEmail": "bob@corp.example"}}],
    }) == ("sa:deployer@p.iam.gserviceaccount.com", "ServiceAccount", "bob@corp.example")
    assert gcp.principal_of_entry({"principalSubject": "serviceAccount:x@p.iam.gserviceaccount.com"})[0] == \
        "sa:x@p.iam.gserviceaccount.com"
    assert gcp.principal_of_entry({}) == ("unknown", "", None)
    assert gcp.full_resource_name("storage.googleapis.com", "projects/_/buckets/logs/objects/a/b.txt") == \
        "//storage.googleapis.com/projects/_/buckets/logs"
    assert gcp.resource_kind(VM5) == "gcp:compute/instances" and gcp.resource_name(VM5) == "vm5"
    assert gcp.relation_of_entry("storage.objects.get", "projects/p/logs/cloudaudit.googleapis.com%2Fdata_access") \
        == USE
    assert gcp.relation_of_entry("v1.compute.disks.createSnapshot", "x%2Factivity") == MANAGE


# ------------------------------------------------------------------------------------------------
# Azure EA / MCA cost exports


def test_azure_ea_actual_cost_export(shared_data: Path) -> None:
    path = shared_data / "cost/azure-ea/EA_ActualCost_Small.csv"
    issues: list[BundleIssue] = []
    cf = read_cost_file(path, issues)
    assert issues == []
    assert cf is not None and cf.format == "azure-actual" and cf.table.schema == COST_SCHEMA
    t = cf.table
    assert t.num_rows == 11
    rows = _csv_rows(path)
    want = sum(float(r["Cost"]) for r in rows)
    assert round(pc.sum(t["billed"]).as_py(), 2) == round(want, 2) == 8.55
    assert math.isclose(pc.sum(t["billed"]).as_py(), want, rel_tol=1e-12)
    assert math.isclose(pc.sum(t["cost"]).as_py(), want, rel_tol=1e-12)  # actual: amortized = billed
    assert set(t["provider"].to_pylist()) == {"Microsoft"} and cf.currency == "USD"
    assert Counter(t["category"].to_pylist()) == {"usage": 10, "fee": 1}  # the reservation purchase
    assert t["resource"].null_count == 0
    resources = set(t["resource"].to_pylist())
    assert len(resources) == 11
    assert all(r == r.lower() for r in resources)
    assert "/providers/microsoft.capacity/reservationorders/49ed0e4d-8e0c-4f1f-af2c-67c865056615" in resources
    assert set(t["account"].to_pylist()) == {f"/subscriptions/{s}" for s in (
        "1caaa5a3-2b66-438e-8ab4-bce37d518c5d", "ed570627-0265-4620-bb42-bae06bcfa914",
        "9ec51cfd-5ca7-4d76-8101-dd0a4abc5674", "64e355d7-997c-491d-b0c1-8414dccfcf42")}
    assert min(t["start"].to_pylist()).date().isoformat() == "2023-09-04"  # MM/DD/YYYY
    # EA's Tags are JSON members without their braces.
    db = ("/subscriptions/ed570627-0265-4620-bb42-bae06bcfa914/resourcegroups/databricks-rg-peskydata-s6taefbli5c5e/"
          "providers/microsoft.storage/storageaccounts/dbstoragewp6hglwvvrad2")
    assert cf.tags[db] == {"CostCenter": "1234", "env": "prod", "org": "trey", "application": "databricks",
                           "databricks-environment": "true"}
    assert len(cf.tags) == 9


def test_azure_ea_amortized_cost_export(shared_data: Path) -> None:
    path = shared_data / "cost/azure-ea/EA_AmortizedCost_Small.csv"
    issues: list[BundleIssue] = []
    cf = read_cost_file(path, issues)
    assert issues == []
    assert cf is not None and cf.format == "azure-amortized"
    t = cf.table
    assert t.num_rows == 28
    rows = _csv_rows(path)
    amortized = sum(float(r["Cost"]) for r in rows)
    covered = sum(float(r["Cost"]) for r in rows if r["PricingModel"] in ("Reservation", "SavingsPlan"))
    assert round(amortized, 2) == 16.30 and round(covered, 6) == 0.499152
    assert math.isclose(pc.sum(t["cost"]).as_py(), amortized, rel_tol=1e-12)
    # usage a reservation or savings plan paid for was billed by the purchase, not by the usage
    assert math.isclose(pc.sum(t["billed"]).as_py(), amortized - covered, rel_tol=1e-12)
    assert round(pc.sum(t["billed"]).as_py(), 2) == 15.80
    assert len(set(t["resource"].to_pylist())) == 22 and len(cf.tags) == 21


def test_azure_kind_from_rows_and_mca_headers(shared_data: Path, tmp_path: Path) -> None:
    """Renamed so their names say nothing: the rows decide (a reservation purchase with a cost: actual;
    reservation-covered usage with a cost: amortized). An MCA-style camelCase header with ISO dates reads too."""
    for name, want in (("EA_ActualCost_Small.csv", "azure-actual"), ("EA_AmortizedCost_Small.csv", "azure-amortized")):
        dst = tmp_path / f"x{len(want)}" / "part_0_0001.csv"
        dst.parent.mkdir()
        shutil.copy(shared_data / "cost/azure-ea" / name, dst)
        cf = read_cost_file(dst, [])
        assert cf is not None and cf.format == want
    mca = tmp_path / "mca" / "usage.csv"
    mca.parent.mkdir()
    mca.write_text(
        "invoiceSectionName,subscriptionId,date,meterCategory,resourceId,resourceLocation,chargeType,pricingModel,"
        "costInBillingCurrency,billingCurrencyCode,tags\n"
        "S,AAAA,2026-11-01,Virtual Machines,/subscriptions/AAAA/resourceGroups/RG/providers/Microsoft.Compute/"
        'virtualMachines/VM1,West Europe,Usage,OnDemand,1.5,EUR,"{""team"": ""pay""}"\n'
        "S,AAAA,2026-11-02,Virtual Machines,/subscriptions/AAAA/resourceGroups/RG/providers/Microsoft.Compute/"
        "virtualMachines/VM1,West Europe,Usage,OnDemand,2.25,EUR,\n")
    issues: list[BundleIssue] = []
    cf = read_cost_file(mca, issues)
    assert issues == [] and cf is not None and cf.format == "azure-actual" and cf.currency == "EUR"
    vm = "/subscriptions/aaaa/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"
    assert cf.table["resource"].to_pylist() == [vm, vm]
    assert cf.table["region"].to_pylist() == ["westeurope", "westeurope"]
    assert pc.sum(cf.table["cost"]).as_py() == 3.75 and cf.tags == {vm: {"team": "pay"}}


def test_detect_format_azure_and_gcp(shared_data: Path) -> None:
    header = next(csv.reader((shared_data / "cost/azure-ea/EA_ActualCost_Small.csv").open(encoding="utf-8-sig")))
    assert detect_format(header) == "azure"
    assert detect_format(["usage_start_time", "cost", "service.description", "sku.description"]) == "gcp-billing"
    assert detect_format(["Date", "Cost", "ResourceId"]) is None  # no Azure marker: not guessed
    assert detect_format(["ChargePeriodStart", "BilledCost", "ResourceId", "SubscriptionId"]) == "focus"


# ------------------------------------------------------------------------------------------------
# GCP billing export

GCP_ROWS = [
    # (usage_start_time, service, sku, cost, credits, global_name, labels, cost_type)
    ("2021-11-09 00:00:00 UTC", "Compute Engine", "N1 Predefined Instance Core", 10.0,
     [{"name": "Sustained Usage Discount", "amount": -2.5, "type": "SUSTAINED_USAGE_DISCOUNT"}], VM5,
     [{"key": "team", "value": "payments"}], "regular"),
    ("2021-11-10 00:00:00 UTC", "Compute Engine", "N1 Predefined Instance Core", 4.25,
     [{"name": "Free Trial", "amount": -1.0, "type": "FREE_TIER"}], VM5, [{"key": "team", "value": "payments"},
                                                                           {"key": "env", "value": "prod"}], "regular"),
    ("2021-11-10 00:00:00 UTC", "Compute Engine", "Storage PD Capacity", 0.75, [], VM1, [], "regular"),
    ("2021-11-10 00:00:00 UTC", "Cloud Storage", "Standard Storage", 0.5, [], "", [], "regular"),
    ("2021-11-10 00:00:00 UTC", "Invoice", "Tax", 1.2, [], "", [], "tax"),
]
GCP_TOTAL = 10.0 - 2.5 + 4.25 - 1.0 + 0.75 + 0.5 + 1.2  # 13.2: the invoice, net of credits


def _gcp_jsonl(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for start, service, sku, cost, credits, name, labels, cost_type in GCP_ROWS:
        lines.append(orjson.dumps({
            "billing_account_id": "01ABCD-234567-89EFGH", "service": {"id": "6F81-5844-456A", "description": service},
            "sku": {"id": "2E27-4F75-95CD", "description": sku}, "usage_start_time": start,
            "usage_end_time": start, "project": {"id": GCP_PROJECT, "name": "test", "labels": []},
            "labels": labels, "system_labels": [], "location": {"location": "us-central1", "region": "us-central1",
                                                                 "zone": "us-central1-a"},
            "resource": {"name": name.rsplit("/", 1)[-1] if name else None, "global_name": name or None},
            "cost": cost, "currency": "USD", "usage": {"amount": 1.0, "unit": "seconds"}, "credits": credits,
            "invoice": {"month": "202111"}, "cost_type": cost_type,
        }))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _gcp_csv(path: Path) -> Path:
    """As the BigQuery console exports a query of the table: dotted column names, JSON in the cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["billing_account_id", "service.description", "sku.description", "usage_start_time",
                    "project.id", "location.region", "resource.global_name", "labels", "cost", "currency",
                    "credits", "cost_type"])
        for start, service, sku, cost, credits, name, labels, cost_type in GCP_ROWS:
            w.writerow(["01ABCD-234567-89EFGH", service, sku, start, GCP_PROJECT, "us-central1", name,
                        json.dumps(labels), repr(cost), "USD", json.dumps(credits), cost_type])
    return path


@pytest.mark.parametrize("writer", [_gcp_jsonl, _gcp_csv], ids=["jsonl", "csv"])
def test_gcp_billing_export(writer, tmp_path: Path) -> None:
    path = writer(tmp_path / "cost" / ("billing.jsonl" if writer is _gcp_jsonl else "billing.csv"))
    issues: list[BundleIssue] = []
    cf = read_cost_file(path, issues)
    assert issues == []
    assert cf is not None and cf.format == "gcp-billing" and cf.table.schema == COST_SCHEMA
    t = cf.table
    assert t.num_rows == 7  # 5 line items and their 2 credits
    assert round(pc.sum(t["billed"]).as_py(), 2) == round(pc.sum(t["cost"]).as_py(), 2) == round(GCP_TOTAL, 2) == 13.2
    assert Counter(t["category"].to_pylist()) == {"usage": 4, "discount": 1, "credit": 1, "tax": 1}
    per = Counter()
    for r, c in zip(t["resource"].to_pylist(), t["cost"].to_pylist(), strict=True):
        per[r] += c
    assert per == {VM5: pytest.approx(10.75), VM1: 0.75, None: pytest.approx(1.7)}
    assert cf.tags == {VM5: {"team": "payments", "env": "prod"}}
    assert set(t["account"].to_pylist()) == {GCP_PROJECT} and set(t["region"].to_pylist()) == {"us-central1"}
    assert set(t["provider"].to_pylist()) == {"Google Cloud"}


def test_cost_json_files_manifests_and_strangers(tmp_path: Path) -> None:
    _gcp_jsonl(tmp_path / "cost" / "gcp" / "billing-000.json.gz")
    gz = tmp_path / "cost" / "gcp" / "billing-000.json.gz"
    gz.write_bytes(gzip.compress(gz.read_bytes()))
    (tmp_path / "cost" / "cur" / "metadata").mkdir(parents=True)
    (tmp_path / "cost" / "cur" / "metadata" / "cur-Manifest.json").write_text('{"reportName": "cur"}')
    (tmp_path / "cost" / "stranger.json").write_text('{"hello": "world"}\n')
    files = cost_files(tmp_path)
    assert [f.name for f in files] == ["billing-000.json.gz", "stranger.json"]  # manifests are not data
    issues: list[BundleIssue] = []
    assert read_cost_file(files[0], issues).table.num_rows == 7
    assert read_cost_file(files[1], issues) is None
    assert len(issues) == 1 and issues[0].message.startswith("unrecognised cost export format (JSON keys: hello)")


# ------------------------------------------------------------------------------------------------
# bundles


def _cloud_files(bundle: Path, shared_data: Path) -> None:
    """The Azure and GCP samples, laid out as a bundle holds them."""
    for src in _azure_samples(shared_data):
        dst = bundle / "azure-activity" / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    for src in _gcp_samples(shared_data):
        dst = bundle / "gcp-audit" / src.parent.name / (src.stem + ".json")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    (bundle / "cost" / "azure").mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / "cost/azure-ea/EA_ActualCost_Small.csv", bundle / "cost" / "azure")
    _gcp_csv(bundle / "cost" / "gcp" / "billing.csv")


def test_malformed_cloud_files_are_bundle_issues(shared_data: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    _cloud_files(bundle, shared_data)
    bad_az = bundle / "azure-activity" / "broken.json"
    bad_az.write_text('{"records": [{"time": "2026-11-01T00:00:00Z", "operationName": ')
    odd_az = bundle / "azure-activity" / "odd.json"
    odd_az.write_text('{"records": [42, {"time": "2026-11-01T00:00:00Z"}]}')
    bad_gcp = bundle / "gcp-audit" / "cut.json.gz"
    bad_gcp.write_bytes(gzip.compress(b'{"insertId": "x"}\n' * 50)[:40])
    mixed_gcp = bundle / "gcp-audit" / "mixed.jsonl"
    good = (shared_data / "gcp/audit-log/plaso/gcp_logging.jsonl").read_text().splitlines()[0]
    mixed_gcp.write_text(good + "\nthis is not json\n")
    bad_cost = bundle / "cost" / "gcp" / "billing-bad.csv"
    bad_cost.write_text("usage_start_time,cost,service.description\nyesterday,1.0,Compute Engine\n"
                        "2021-11-10 00:00:00 UTC,abc,Compute Engine\n2021-11-10 00:00:00 UTC,2.0,Compute Engine\n")

    b = load_bundle(bundle, workers=1)
    by_file = Counter(Path(i.path).name for i in b.issues)
    assert by_file == {"broken.json": 1, "odd.json": 2, "cut.json.gz": 1, "mixed.jsonl": 1, "billing-bad.csv": 2}
    msgs = {(Path(i.path).name, i.location): i.message for i in b.issues}
    assert msgs[("odd.json", "record 1")] == "record is not a JSON object (got int)"
    assert msgs[("odd.json", "record 2")] == "record has no operationName"
    assert msgs[("cut.json.gz", "")] == "truncated gzip stream"
    assert msgs[("mixed.jsonl", "line 2")].startswith("not valid JSON")
    assert msgs[("billing-bad.csv", "row 1")] == "usage_start_time is not a time; row skipped"
    assert msgs[("billing-bad.csv", "row 2")] == "cost is not a finite number; row skipped"
    # Everything else still loads: 5 Azure events, 60 + 6 GCP events (mixed.jsonl's good line is a copy).
    assert b.activity.records == 5 + 60 + 6
    assert round(b.costs.total, 2) == round(8.545008 + GCP_TOTAL + 2.0, 2)
    with pytest.raises(BundleError):
        load_bundle(bundle, strict=True, workers=1)


def test_cloud_only_bundle_loads(shared_data: Path, tmp_path: Path) -> None:
    from jobs.accounts import check_bundle_dir

    bundle = tmp_path / "bundle"
    _cloud_files(bundle, shared_data)
    check_bundle_dir(bundle)
    b = load_bundle(bundle, workers=1)
    assert b.issues == []
    assert b.activity.records == 5 + 60 + 6
    assert b.costs.formats == {"azure-actual", "gcp-billing"}
    assert round(b.costs.total, 2) == round(8.545008 + GCP_TOTAL, 2) == 21.75
    kinds = Counter(r.kind for r in b.resources.values())
    assert kinds["gcp:compute/instances"] == 16 and kinds["azure:microsoft.storage/storageaccounts"] == 3
    # projects, operations, networks and firewalls are named by events but are not inventory
    assert not any(k.endswith(("/projects", "/operations", "/networks", "/firewalls")) for k in kinds)
    vm5 = b.resources[VM5]
    assert (vm5.id, vm5.region, vm5.account) == ("vm5", "us-central1", GCP_PROJECT)
    assert vm5.tags == {"team": "payments", "env": "prod"} and vm5.sources == {"gcp-audit", "cost"}
    site = b.resources[f"/subscriptions/{AZ_SUB3}/resourcegroups/testeventhublogs/providers/microsoft.web/sites/"
                       "sumoazureauditapp"]
    assert (site.id, site.kind, site.account, site.region) == (
        "sumoazureauditapp", "azure:microsoft.web/sites", AZ_SUB3, "westus")
    assert b.activity.creators[VM5][1:] == ("user:user@dummy-domain.com", "user@dummy-domain.com")


def test_mixed_bundle_scans(tiny_org: Path, tiny_bundle, shared_data: Path, fast_model_config, tmp_path: Path,
                            torch_one_thread) -> None:
    from engine.scan import scan_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", bundle)
    _cloud_files(bundle, shared_data)
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    b = result.bundle
    assert b.issues == []
    arns = {r.arn for r in result.rows}
    assert set(tiny_bundle.resources) <= arns  # every AWS resource is still there
    foreign = {a for a in arns if a not in tiny_bundle.resources}
    assert VM5 in foreign and f"/subscriptions/{AZ_SUB1}/resourcegroups/mw-gr1/providers/microsoft.storage/" \
        "storageaccounts/dtmwstorage1" in foreign
    assert len({a for a in foreign if a.startswith("//")}) == 28  # GCP: 30 resources named, 2 of them plumbing
    assert len({a for a in foreign if azure.is_azure_id(a)}) == 5 + 11  # Azure: 5 from events, 11 from cost
    row = next(r for r in result.rows if r.arn == VM5)
    assert row.type == "gcp:compute/instances" and row.resource_id == "vm5"
    assert row.cost_usd == pytest.approx(10.75) and row.tag_team == "payments"
    assert b.activity.records == tiny_bundle.activity.records + 5 + 60 + 6
    assert b.costs.total == pytest.approx(tiny_bundle.costs.total + 8.545008 + GCP_TOTAL, abs=1e-5)
    assert b.costs.formats == {"cur2", "azure-actual", "gcp-billing"}
    # The model ran over all of it: every GCP and Azure resource has a prediction row with its evidence.
    assert result.prediction is not None and len(result.prediction.proba) == len(result.rows)
    assert "payments" in result.classes


@pytest.mark.parametrize("kind", ["azure-activity", "gcp-audit", "azure-cost", "gcp-cost"])
def test_mutated_files_give_issues_never_exceptions(kind: str, shared_data: Path, tmp_path: Path) -> None:
    """Bytes flipped, cut, doubled or dropped (seeded): every reader answers with events or issues."""
    import random

    if kind == "azure-activity":
        seed = (shared_data / "azure/activity-log/dynatrace/test_activity_logs.records.json").read_bytes()
        read = lambda p, issues: azure.read_azure_activity([p], issues)  # noqa: E731
        name = "a.json"
    elif kind == "gcp-audit":
        seed = (shared_data / "gcp/audit-log/plaso/gcp_logging.jsonl").read_bytes()
        read = lambda p, issues: gcp.read_gcp_audit([p], issues)  # noqa: E731
        name = "a.jsonl"
    elif kind == "azure-cost":
        seed = (shared_data / "cost/azure-ea/EA_AmortizedCost_Small.csv").read_bytes()
        read = read_cost_file
        name = "a.csv"
    else:
        seed = _gcp_jsonl(tmp_path / "seed.jsonl").read_bytes()
        read = read_cost_file
        name = "a.jsonl"
    rng = random.Random(11)
    for i in range(120):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            op, at = rng.randrange(5), rng.randrange(max(1, len(data)))
            if op == 0:
                data[at] = rng.randrange(256)
            elif op == 1:
                del data[at:at + rng.randint(1, 200)]
            elif op == 2:
                data[at:at] = data[at:at + rng.randint(1, 200)]
            elif op == 3:
                data[at:at] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b"\n", b"null", b"1e999", b"\x00"])
            else:
                data = data[:at]
        path = tmp_path / f"{i}-{name}"
        path.write_bytes(bytes(gzip.compress(bytes(data)) if i % 4 == 0 else data))
        issues: list[BundleIssue] = []
        read(path, issues)  # must not raise
        assert all(isinstance(x, BundleIssue) and x.path == str(path) for x in issues)
