"""manifests/slack.yaml against Slack's published app manifest JSON schema (offline).

The schema lives in ``../shared/data/slack/manifest_schema`` (a copy of slackapi/manifest-schema). Its
top-level ``manifest.schema.json`` picks a versioned schema with ``$ref``s to raw.githubusercontent.com;
here those URLs resolve to the local files under ``schemas/`` through a ``referencing`` registry, so no
network is used (an unresolvable remote ref would raise, not fetch).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "slack.yaml"
REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"


@pytest.fixture(scope="module")
def schema_dir(shared_data: Path) -> Path:
    d = shared_data / "slack" / "manifest_schema"
    if not (d / "schemas" / "manifest.schema.1.0.0.json").is_file():
        pytest.skip(f"Slack manifest schema not found under {d}")
    return d


@pytest.fixture(scope="module")
def validator(schema_dir: Path) -> jsonschema.Draft7Validator:
    """A validator for the top-level (all versions) schema, its remote $refs served from local files."""
    resources = []
    for f in sorted((schema_dir / "schemas").glob("manifest.schema.*.json")):
        contents = json.loads(f.read_text())
        resources.append((REMOTE + f.name, Resource.from_contents(contents, default_specification=DRAFT7)))
    registry = Registry().with_resources(resources)
    top = json.loads((schema_dir / "manifest.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(top)
    return jsonschema.Draft7Validator(top, registry=registry)


@pytest.fixture(scope="module")
def v1_validator(schema_dir: Path) -> jsonschema.Draft7Validator:
    """The versioned 1.0.0 schema directly (all its $refs are local '#/definitions/...')."""
    schema = json.loads((schema_dir / "schemas" / "manifest.schema.1.0.0.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def _errors(v: jsonschema.Draft7Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in v.iter_errors(doc)]


def test_schema_examples_behave(schema_dir: Path, validator, v1_validator) -> None:
    """The schema project's own v1 examples: the valid one passes, the invalid one fails (the setup works)."""
    examples = schema_dir / "tests" / "manifests" / "v1"
    good = json.loads((examples / "manifest.valid.json").read_text())
    bad = json.loads((examples / "manifest.invalid.json").read_text())
    for v in (validator, v1_validator):
        assert _errors(v, good) == []
        assert _errors(v, bad)


def test_manifest_is_valid(manifest, validator, v1_validator) -> None:
    assert _errors(validator, manifest) == []
    assert _errors(v1_validator, manifest) == []


def test_manifest_has_what_the_bot_relies_on(manifest) -> None:
    assert manifest["display_information"]["name"] == "costdna"
    features = manifest["features"]
    assert features["bot_user"]["display_name"] == "costdna"
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True

    (cmd,) = features["slash_commands"]
    assert cmd["command"] == "/costdna"
    assert cmd["should_escape"] is False
    assert cmd["description"]
    for word in (
        "help",
        "status",
        "scan [account]",
        "ask <question>",
        "owner <resource>",
        "teams",
        "label",
        "apply",
        "spikes",
        "digest",
        "settings",
    ):
        assert word in cmd["usage_hint"]

    settings = manifest["settings"]
    # thread follow-ups without a mention (issue 10): the message.* events, with their history scopes
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention", "app_home_opened", "message.channels", "message.groups", "message.im"}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False

    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert {"commands", "chat:write", "app_mentions:read"} <= set(scopes)
    # the watch (issue 9): DMs (im:write), chart uploads (files:write), users.lookupByEmail
    assert {"im:write", "files:write", "users:read", "users:read.email"} <= set(scopes)
    assert {"channels:history", "groups:history", "im:history"} <= set(scopes)
    assert set(scopes) <= {"commands", "chat:write", "app_mentions:read", "im:write", "users:read",
                           "users:read.email", "files:write", "channels:history", "groups:history",
                           "im:history"}
    from bot.slack.app import SCOPES

    assert set(SCOPES) == set(scopes)  # the OAuth install asks for what the manifest declares
    assert len(scopes) == len(set(scopes))


def test_socket_mode_manifest_has_no_request_urls(manifest) -> None:
    """In Socket Mode no request_url/url may be present (they would also need a public host)."""

    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)

    found = [
        k for k in keys(manifest) if k in ("request_url", "url", "redirect_urls", "message_menu_options_url")
    ]
    assert found == []
    # ...while the HTTP variant is documented in a comment for people who run `costdna serve` over HTTP.
    text = MANIFEST.read_text()
    assert "https://YOUR_HOST/slack/events" in text
    assert "https://YOUR_HOST/slack/oauth_redirect" in text


def _break(doc: dict, path: str, value=None, delete: bool = False) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if delete:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "delete"),
    [
        ("settings.interactivity.is_enabled", None, True),  # interactivity without is_enabled
        ("settings.interactivity", {"request_url": "https://example.com/x"}, False),  # still no is_enabled
        ("settings.event_subscriptions.request_url", "ws://not-http", False),
        ("settings.sockets", True, False),  # unknown setting
        ("oauth_config.scopes.bot.0", "x" * 51, False),  # scope names are at most 50 characters
        ("oauth_config.scopes.admin", ["commands"], False),  # no such scope kind
        ("features.slash_commands.0.command", "costdna", False),  # must start with "/"
        ("features.slash_commands.0.description", None, True),  # description is required
        ("features.bot_user.display_name", "", False),
        ("display_information.name", "c" * 36, False),  # at most 35 characters
        ("display_information", None, True),  # required
        ("features.app_home.home_tab", True, False),  # misspelt key
    ],
)
def test_broken_copies_fail(manifest, validator, v1_validator, path, value, delete) -> None:
    broken = _break(manifest, path, value, delete)
    assert _errors(validator, broken), f"{path} broken but the schema accepted it"
    assert _errors(v1_validator, broken)
