"""Writing owner tags to a live AWS account through the Resource Groups Tagging API.

``AwsTagWriter.write`` has the contract of ``BundleTagWriter.write``: each resource's tags become
exactly the given dict, and the result maps ``arn -> error`` for the resources that failed (the
others succeeded). Per-resource problems never raise; only a failure of the whole write (the role
cannot be assumed) raises ``TagWriteError``.

How a write is sent:

- ARNs are grouped by the region in the ARN (regionless ARNs, such as S3 buckets', go to the
  writer's default region): ``TagResources`` takes ARNs of one region only.
- Within a region, ARNs that get the identical tag set share ``TagResources`` calls of at most 20
  ARNs each.
- Keys that were on a resource (its current tags, read with ``GetResources``, plus the keys of
  ``previous``) but are absent from the new set are removed with ``UntagResources``, grouped the same
  way. That is how a rollback removes an added ``team`` key. ``aws:`` keys are never removed.
- ``FailedResourcesMap`` entries become per-ARN errors. A call that fails as a whole marks its ARNs
  failed; when the error could concern one resource only (``NoSuchBucket`` for one bucket of twenty),
  the call is retried one ARN at a time so the healthy resources still get their tags.

Credentials are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from engine.arns import canonical_arn, parse_arn
from jobs.tagwriter import TagWriteError

log = logging.getLogger(__name__)

SERVICE = "resourcegroupstaggingapi"
ROLE_SESSION_NAME = "costdna-tagger"
TAG_CHUNK = 20  # TagResources / UntagResources: 1-20 ARNs per call
READ_CHUNK = 100  # GetResources: up to 100 ARNs per ResourceARNList
DEFAULT_MAX_ATTEMPTS = 8
_REFRESH_BEFORE = timedelta(minutes=5)  # re-assume the role this long before its credentials expire

# Errors that concern the whole call (credentials, permissions, throttling, the service itself):
# retrying the ARNs one by one would fail the same way, so the chunk is marked failed at once.
CALL_WIDE_ERRORS = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "MissingAuthenticationToken",
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "TooManyRequestsException", "SlowDown",
    "InternalServiceException", "InternalFailure", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException",
})

Tags = dict[str, str]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _client_error_text(e: ClientError) -> tuple[str, str]:
    err = e.response.get("Error", {}) if isinstance(e.response, dict) else {}
    code = str(err.get("Code") or "ClientError")
    message = str(err.get("Message") or e)
    return code, f"{code}: {message}"


def _default_session() -> Any:
    import aioboto3

    return aioboto3.Session()


class AwsTagWriter:
    """Sets complete tag sets on resources of one AWS account.

    ``session_factory`` returns an ``aioboto3.Session`` holding the base credentials (default: the
    standard credential chain). With ``role_arn`` the writer first assumes that role with STS
    (``RoleSessionName="costdna-tagger"``, ``ExternalId=external_id`` when given) and tags with the
    temporary credentials, re-assuming shortly before they expire. ``regions``, when given, lists the
    regions the writer may touch: ARNs elsewhere are reported failed. ``endpoint_url`` points every
    client (tagging and STS) at an emulator. ``config`` defaults to adaptive retries with
    ``max_attempts`` attempts.
    """

    def __init__(
        self,
        *,
        default_region: str | None = None,
        regions: Iterable[str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        session_factory: Callable[[], Any] | None = None,
    ):
        self.regions: tuple[str, ...] | None = tuple(regions) if regions is not None else None
        self.default_region = default_region or (self.regions[0] if self.regions else "us-east-1")
        self.role_arn = role_arn
        self.external_id = external_id
        self.endpoint_url = endpoint_url
        self.config = config or Config(retries={"mode": "adaptive", "max_attempts": max_attempts})
        self._session_factory = session_factory or _default_session
        self._assumed: Any = None
        self._assumed_until: datetime | None = None
        self._assume_lock = asyncio.Lock()

    def __repr__(self) -> str:  # no credentials in here, ever
        return (f"AwsTagWriter(default_region={self.default_region!r}, regions={self.regions!r}, "
                f"role_arn={self.role_arn!r}, endpoint_url={self.endpoint_url!r})")

    # -- sessions and clients ---------------------------------------------------------------------

    async def _session(self) -> Any:
        """The session to tag with: the base one, or one holding the assumed role's credentials."""
        if not self.role_arn:
            return self._session_factory()
        async with self._assume_lock:
            now = datetime.now(UTC)
            if self._assumed is not None and (self._assumed_until is None
                                              or now < self._assumed_until - _REFRESH_BEFORE):
                return self._assumed
            base = self._session_factory()
            params: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": ROLE_SESSION_NAME}
            if self.external_id:
                params["ExternalId"] = self.external_id
            try:
                async with base.client("sts", region_name=self.default_region, endpoint_url=self.endpoint_url,
                                       config=self.config) as sts:
                    creds = (await sts.assume_role(**params))["Credentials"]
            except ClientError as e:
                raise TagWriteError(f"cannot assume {self.role_arn}: {_client_error_text(e)[1]}") from e
            except BotoCoreError as e:
                raise TagWriteError(f"cannot assume {self.role_arn}: {e}") from e
            import aioboto3

            self._assumed = aioboto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            expiration = creds.get("Expiration")
            self._assumed_until = expiration if isinstance(expiration, datetime) else None
            log.info("assumed %s for tagging (session %s)", self.role_arn, ROLE_SESSION_NAME)
            return self._assumed

    def _client(self, session: Any, region: str) -> Any:
        return session.client(SERVICE, region_name=region, endpoint_url=self.endpoint_url, config=self.config)

    def _region_of(self, arn: str) -> tuple[str | None, str | None]:
        """(region, None) for an ARN the writer may tag, else (None, error)."""
        a = parse_arn(arn)
        if a is None:
            return None, "not an ARN"
        region = a.region or self.default_region
        if self.regions is not None and region not in self.regions:
            return None, f"region {region} is not one of this account's regions ({', '.join(self.regions)})"
        return region, None

    # -- reading ----------------------------------------------------------------------------------

    async def read(self, arns: Iterable[str]) -> dict[str, Tags]:
        """``arn -> tags`` for each ARN asked for; ``{}`` for one the tagging API does not list
        (untagged, or gone). Raises ``TagWriteError`` when the tags cannot be read."""
        wanted = list(dict.fromkeys(arns))
        by_region: dict[str, list[str]] = {}
        for arn in wanted:
            region, error = self._region_of(arn)
            if region is None:
                raise TagWriteError(f"{arn}: {error}")
            by_region.setdefault(region, []).append(arn)
        if not by_region:
            return {}
        session = await self._session()

        async def one_region(region: str, region_arns: list[str]) -> dict[str, Tags]:
            async with self._client(session, region) as client:
                try:
                    return await self._get_tags(client, region_arns)
                except ClientError as e:
                    raise TagWriteError(f"reading tags in {region}: {_client_error_text(e)[1]}") from e
                except BotoCoreError as e:
                    raise TagWriteError(f"reading tags in {region}: {e}") from e

        found: dict[str, Tags] = {}
        for part in await asyncio.gather(*(one_region(r, a) for r, a in by_region.items())):
            found.update(part)
        return {arn: dict(found.get(canonical_arn(arn), {})) for arn in wanted}

    @staticmethod
    async def _get_tags(client: Any, arns: list[str]) -> dict[str, Tags]:
        """canonical ARN -> tags, for the ARNs the API lists."""
        out: dict[str, Tags] = {}
        for chunk in _chunks(arns, READ_CHUNK):
            token = ""
            while True:
                kwargs: dict[str, Any] = {"ResourceARNList": chunk}
                if token:
                    kwargs["PaginationToken"] = token
                resp = await client.get_resources(**kwargs)
                for m in resp.get("ResourceTagMappingList", []):
                    if m.get("ResourceARN"):
                        out[canonical_arn(m["ResourceARN"])] = {t["Key"]: t["Value"] for t in m.get("Tags", [])}
                token = resp.get("PaginationToken") or ""
                if not token:
                    break
        return out

    # -- writing ----------------------------------------------------------------------------------

    async def write(self, tags: Mapping[str, Mapping[str, str]],
                    previous: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
        """Set each resource's complete tag set (``arn -> tags``); returns ``arn -> error`` for failures.

        ``previous`` (``arn -> tags`` before the change, e.g. the applied tags when rolling back) names
        keys to remove besides those currently on the resource.
        """
        errors: dict[str, str] = {}
        by_region: dict[str, dict[str, Tags]] = {}
        for arn, new in tags.items():
            region, error = self._region_of(arn)
            if region is None:
                errors[arn] = error or "cannot tag"
                continue
            by_region.setdefault(region, {})[arn] = dict(new)
        if not by_region:
            return errors
        session = await self._session()
        prev = previous or {}
        results = await asyncio.gather(*(self._write_region(session, region, items, prev)
                                         for region, items in by_region.items()))
        for part in results:
            errors.update(part)
        if errors:
            log.warning("tag write: %d of %d resources failed", len(errors), len(tags))
        return errors

    async def _write_region(self, session: Any, region: str, items: dict[str, Tags],
                            previous: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        errors: dict[str, str] = {}
        async with self._client(session, region) as client:
            try:
                current = await self._get_tags(client, list(items))
            except (ClientError, BotoCoreError) as e:
                # Without the current tags only the keys in ``previous`` can be removed.
                reason = _client_error_text(e)[1] if isinstance(e, ClientError) else str(e)
                log.warning("tag write in %s: cannot read current tags (%s); removing only known keys",
                            region, reason)
                current = {}

            groups: dict[frozenset[tuple[str, str]], list[str]] = {}
            for arn, new in items.items():
                if new:  # TagResources needs at least one tag; an empty set only removes keys
                    groups.setdefault(frozenset(new.items()), []).append(arn)
            calls = 0
            for tagset, arns in groups.items():
                for chunk in _chunks(arns, TAG_CHUNK):
                    calls += 1
                    errors.update(await self._call(client, "tag_resources", chunk, Tags=dict(tagset)))

            removals: dict[frozenset[str], list[str]] = {}
            for arn, new in items.items():
                if arn in errors:
                    continue
                old = set(previous.get(arn, {})) | set(current.get(canonical_arn(arn), {}))
                gone = frozenset(k for k in old - set(new) if not k.startswith("aws:"))
                if gone:
                    removals.setdefault(gone, []).append(arn)
            for keys, arns in removals.items():
                for chunk in _chunks(arns, TAG_CHUNK):
                    calls += 1
                    failed = await self._call(client, "untag_resources", chunk, TagKeys=sorted(keys))
                    errors.update({arn: f"removing {', '.join(sorted(keys))}: {msg}" for arn, msg in failed.items()})
        log.info("tag write in %s: %d resources, %d calls, %d failed", region, len(items), calls, len(errors))
        return errors

    async def _call(self, client: Any, op: str, chunk: list[str], **kwargs: Any) -> dict[str, str]:
        """One TagResources/UntagResources call; ``arn -> error`` for the ARNs it did not change."""
        try:
            resp = await getattr(client, op)(ResourceARNList=chunk, **kwargs)
        except ClientError as e:
            code, text = _client_error_text(e)
            if len(chunk) > 1 and code not in CALL_WIDE_ERRORS:
                # Possibly one bad resource failing the whole call: find it, tag the others.
                log.info("%s of %d ARNs failed with %s: retrying one by one", op, len(chunk), code)
                errors: dict[str, str] = {}
                for arn in chunk:
                    errors.update(await self._call(client, op, [arn], **kwargs))
                return errors
            return dict.fromkeys(chunk, text)
        except BotoCoreError as e:
            return dict.fromkeys(chunk, str(e))
        failed = resp.get("FailedResourcesMap") or {}
        if not failed:
            return {}
        by_canonical = {canonical_arn(a): a for a in chunk}
        errors = {}
        for arn, info in failed.items():
            key = arn if arn in chunk else by_canonical.get(canonical_arn(arn), arn)
            info = info or {}
            code = info.get("ErrorCode") or "Failed"
            message = info.get("ErrorMessage") or f"status {info.get('StatusCode', '?')}"
            errors[key] = f"{code}: {message}"
        return errors
