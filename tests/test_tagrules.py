from __future__ import annotations

import dataclasses

import pytest

from engine.tagrules import TagRules, normalize_key


@pytest.fixture
def rules() -> TagRules:
    return TagRules.default()


@pytest.mark.parametrize(
    "value",
    [
        "payments",
        "Payments",
        "payments-team",
        "team-payments",
        "PAYMENTS",
        " payments ",
        "payments_eng",
        "Payments Team",
        "team_payments",
        "payments_team",
        "squad-payments",
        "payments-squad",
        "Payments-Eng",
        "  Team-Payments-Team ",
        "payments__team",
    ],
)
def test_variants_collapse_to_one_team(rules: TagRules, value: str) -> None:
    assert rules.canonical(value) == "payments"


def test_multiword_team_names_keep_their_words(rules: TagRules) -> None:
    assert rules.canonical("Data Platform") == "data-platform"
    assert rules.canonical("data_platform_team") == "data-platform"
    assert rules.canonical("data-platform") == "data-platform"


@pytest.mark.parametrize(
    "value", ["unknown", "None", "N/A", "TBD", "-", "", "   ", "shared", "Unknown Team", "null", None, 42]
)
def test_values_that_name_no_team(rules: TagRules, value: object) -> None:
    assert rules.canonical(value) is None  # type: ignore[arg-type]


def test_affix_is_never_stripped_to_nothing(rules: TagRules) -> None:
    # Stripping stops before a name would vanish: what is left is a (short) team name.
    assert rules.canonical("eng-team") == "eng"
    assert rules.canonical("-eng") == "eng"
    assert rules.canonical("_team") is None  # "team" alone is an ignored placeholder


def test_person_email_is_not_a_team(rules: TagRules) -> None:
    assert rules.canonical("alice@example.com") is None
    assert rules.team_of({"owner": "alice@example.com"}) == (None, None)
    assert rules.canonical("arn:aws:iam::123456789012:user/alice") is None


def test_people_map_turns_person_into_team() -> None:
    rules = TagRules(people={"Alice@Example.com": "Payments Team", "bob": "search"})
    assert rules.canonical("alice@example.com ") == "payments"
    assert rules.canonical("ALICE@EXAMPLE.COM") == "payments"
    assert rules.canonical("bob") == "search"
    assert rules.canonical("carol@example.com") is None
    assert rules.team_of({"Owner": "alice@example.com"}) == ("payments", "Owner")


def test_rewrites_apply_after_cleaning_and_stripping() -> None:
    rules = TagRules(rewrites={"pay": "payments", "Legacy Billing": "billing", "sandbox": ""})
    assert rules.canonical("pay") == "payments"
    assert rules.canonical("PAY") == "payments"
    assert rules.canonical("pay-team") == "payments"
    assert rules.canonical("legacy_billing") == "billing"
    assert rules.canonical("sandbox") is None  # rewritten to an ignored value


def test_rewrite_protects_a_name_that_ends_in_an_affix() -> None:
    default = TagRules.default()
    assert default.canonical("data-eng") == "data"
    rules = TagRules(rewrites={"data-eng": "data-eng"})
    assert rules.canonical("Data Eng") == "data-eng"


@pytest.mark.parametrize(
    "key",
    ["team", "Team", "TEAM", "user:team", "resourceTags/user:team", "user_team", " team "],
)
def test_owner_key_spellings(rules: TagRules, key: str) -> None:
    assert rules.team_of({key: "Payments", "Name": "web-1"}) == ("payments", key)


def test_key_normalisation() -> None:
    assert normalize_key("Team Name") == "team_name"
    assert normalize_key("owner-team") == "owner_team"
    assert normalize_key("user:cost-center") == "cost_center"


def test_cost_center_is_not_an_owner_key(rules: TagRules) -> None:
    assert rules.team_of({"cost-center": "payments", "CostCenter": "payments"}) == (None, None)


def test_key_priority(rules: TagRules) -> None:
    tags = {"owner": "search", "squad": "infra", "team": "payments", "group": "x"}
    assert rules.team_of(tags) == ("payments", "team")
    del tags["team"]
    assert rules.team_of(tags) == ("search", "owner")
    assert rules.team_of({"squad": "infra", "owner_team": "ads", "team_name": "web"}) == ("ads", "owner_team")


def test_priority_skips_keys_whose_value_is_not_a_team(rules: TagRules) -> None:
    tags = {"team": "unknown", "owner": "alice@example.com", "squad": "Infra Squad"}
    assert rules.team_of(tags) == ("infra", "squad")


def test_duplicate_keys_differing_in_case_are_deterministic(rules: TagRules) -> None:
    assert rules.team_of({"team": "b-team", "Team": "a-team"}) == ("a", "Team")
    assert rules.team_of({"Team": "n/a", "team": "payments"}) == ("payments", "team")


def test_no_tags(rules: TagRules) -> None:
    assert rules.team_of({}) == (None, None)
    assert rules.team_of(None) == (None, None)
    assert rules.team_of({"team": None}) == (None, None)  # type: ignore[dict-item]


def test_known_teams_groups_spellings(rules: TagRules) -> None:
    values = ["payments-team", "Payments", "payments_eng", "search", "unknown", None, "Search Team"]
    assert rules.known_teams(values) == {
        "payments": ["Payments", "payments-team", "payments_eng"],
        "search": ["Search Team", "search"],
    }


def test_custom_keys_replace_defaults() -> None:
    rules = TagRules(keys=["Service-Owner", "team"])
    assert rules.team_of({"team": "a", "service_owner": "b"}) == ("b", "service_owner")
    assert rules.team_of({"owner": "a"}) == (None, None)


def test_rules_are_immutable_and_replace_recomputes(rules: TagRules) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.keys = ["x"]  # type: ignore[misc]
    derived = dataclasses.replace(rules, rewrites={"pay": "payments"})
    assert derived.canonical("pay") == "payments"
    assert rules.canonical("pay") == "pay"


def test_load_rewrite_file(tmp_path) -> None:
    path = tmp_path / "tagrules.yaml"
    path.write_text(
        """
keys: [team, Owner, cost_owner]
rewrites:
  pay: payments
  Search Infra: search
strip_prefixes: ["grp-"]
strip_suffixes: ["-svc"]
ignore: [unknown, nobody-knows]
people:
  alice@example.com: payments
""",
        encoding="utf-8",
    )
    rules = TagRules.load(path)
    assert rules.canonical("pay") == "payments"
    assert rules.canonical("search_infra") == "search"
    assert rules.canonical("grp-ads-svc") == "ads"
    assert rules.canonical("ads-team") == "ads-team"  # defaults replaced by the file's affixes
    assert rules.canonical("nobody knows") is None
    assert rules.canonical("shared") == "shared"  # the file's ignore list replaced the default
    assert rules.team_of({"Cost-Owner": "alice@example.com"}) == ("payments", "Cost-Owner")


def test_load_partial_file_keeps_defaults(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rewrites: {pay: payments}\n", encoding="utf-8")
    rules = TagRules.load(path)
    assert rules.canonical("Pay Team") == "payments"
    assert rules.canonical("unknown") is None
    assert rules.team_of({"user:team": "pay"}) == ("payments", "user:team")


def test_load_empty_file_is_default(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert TagRules.load(path) == TagRules.default()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("keys: [team\nrewrites: {", "not valid YAML"),
        ("- team\n- owner\n", "must be a mapping"),
        ("keys: team\n", "'keys' must be a list"),
        ("rewrites: [pay, payments]\n", "'rewrites' must be a mapping"),
        ("people: {alice: [a, b]}\n", "'people' must map strings"),
        ("keyz: [team]\n", "unknown tag rules field"),
        ("ignore: [{a: b}]\n", "'ignore' must be a list"),
        ("keys: []\n", "at least one owner tag key"),
    ],
)
def test_load_bad_content_names_the_file(tmp_path, content: str, fragment: str) -> None:
    path = tmp_path / "bad-rules.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        TagRules.load(path)
    assert "bad-rules.yaml" in str(err.value)
    assert fragment in str(err.value)


def test_load_non_utf8(tmp_path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"rewrites: {caf\xe9: cafe}\n")
    with pytest.raises(ValueError, match="latin.yaml"):
        TagRules.load(path)
