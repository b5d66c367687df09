"""Credentials and clients for reading one live AWS account.

``session_for(account, settings)`` gives an ``AwsSession``: boto's standard credential chain
(environment, ``AWS_PROFILE``, SSO, instance or task role — exactly as boto resolves it, ``AWS_REGION``
and ``AWS_ENDPOINT_URL`` included), and, when the account has a ``role_arn``, the credentials of that
role assumed with STS (``ExternalId`` sent when the account has one). Assumed credentials are
refreshable: botocore renews them before they expire, so a long collection never runs on an expired
token. ``session.client(service, region)`` is an async context manager for an aiobotocore client
with adaptive retries.

``CollectError`` is what a failed call becomes: a message that names the call, what it was reading
and, for a denied call, the IAM action the role lacks ("s3:GetObject on s3://bucket/key denied").
Credentials are never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

ROLE_SESSION_NAME = "costdna-collector"
DEFAULT_REGION = "us-east-1"
MAX_ATTEMPTS = 10
DEFAULT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS}, max_pool_connections=32)

DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
    "AuthorizationError", "Forbidden", "403", "AllAccessDisabled", "AuthorizationErrorException",
})
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "SlowDown", "RequestThrottled", "InternalError", "InternalFailure", "InternalServiceException",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
    "500", "502", "503", "504",
})
CREDENTIAL_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken",
    "ExpiredTokenException", "RequestExpired", "MissingAuthenticationToken", "InvalidAccessKeyId",
    "InvalidToken", "AuthFailure",
})

# The IAM service prefix of each client name, where they differ.
_IAM_PREFIX = {"resourcegroupstaggingapi": "tag"}
# Operations whose IAM action is not "<prefix>:<OperationName>".
_IAM_ACTION = {("s3", "ListObjectsV2"): "s3:ListBucket", ("s3", "ListObjects"): "s3:ListBucket",
               ("s3", "HeadObject"): "s3:GetObject"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action a call needs: ``("s3", "ListObjectsV2") -> "s3:ListBucket"``."""
    return _IAM_ACTION.get((service, operation)) or f"{_IAM_PREFIX.get(service, service)}:{operation}"


class CollectError(Exception):
    """A collection failed; the message says which call, on what, and why (and the IAM action if denied)."""

    def __init__(self, message: str, *, action: str | None = None, target: str | None = None,
                 code: str | None = None, denied: bool = False, transient: bool = False):
        super().__init__(message)
        self.action, self.target, self.code, self.denied = action, target, code, denied
        self.transient = transient  # throttled past the retries, a 5xx, the network: worth another try later


def error_code(e: ClientError) -> tuple[str, str]:
    """(code, message) of a client error; an XML error body that a JSON-protocol client could not parse
    (as some emulators and proxies send) is read for its ``<Code>`` and ``<Message>``."""
    err = e.response.get("Error", {}) if isinstance(e.response, dict) else {}
    code, message = str(err.get("Code") or "ClientError"), str(err.get("Message") or "")
    if message.lstrip().startswith("<"):
        import re

        c, m = re.search(r"<Code>([^<]*)</Code>", message), re.search(r"<Message>([^<]*)</Message>", message)
        code, message = (c[1] if c else code), (m[1] if m else "")
    return code, message


def collect_error(e: BaseException, service: str, operation: str, target: str) -> CollectError:
    """A ``CollectError`` for an exception raised by ``service.operation`` while reading ``target``."""
    action = iam_action(service, operation)
    if isinstance(e, CollectError):
        return e
    if isinstance(e, ClientError):
        code, message = error_code(e)
        status = (e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(e.response, dict) \
            else None
        if code in DENIED_CODES or (status == 403 and code not in CREDENTIAL_CODES):
            advice = ("the role's trust policy must let these credentials assume it (with its ExternalId)"
                      if action == "sts:AssumeRole" else f"add {action} to the role's policy")
            return CollectError(f"{action} on {target} denied ({code}{': ' + message if message else ''}); "
                                f"{advice}", action=action, target=target, code=code, denied=True)
        if code in CREDENTIAL_CODES:
            return CollectError(f"{action} on {target}: the credentials were refused ({code}: {message})",
                                action=action, target=target, code=code)
        return CollectError(f"{action} on {target} failed ({code}{': ' + message if message else ''})",
                            action=action, target=target, code=code,
                            transient=code in TRANSIENT_CODES or (status or 0) >= 500)
    if isinstance(e, BotoCoreError):
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        return CollectError(f"{action} on {target} failed: {e}", action=action, target=target,
                            transient=isinstance(e, BotoConnectionError | HTTPClientError))
    if isinstance(e, OSError | TimeoutError):
        return CollectError(f"{action} on {target} failed: {type(e).__name__}: {e}", action=action, target=target,
                            transient=True)
    return CollectError(f"{action} on {target} failed: {type(e).__name__}: {e}", action=action, target=target)


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _base_session(region: str | None) -> Any:
    import aioboto3

    return aioboto3.Session(region_name=region)


class AwsSession:
    """Clients for one account: the base credentials, or a role assumed from them (refreshed before expiry).

    ``base_factory`` returns the ``aioboto3.Session`` holding the base credentials (default: boto's
    standard chain). ``endpoint_url`` points every client at an emulator (``None``: boto's own
    resolution, which honours ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, *, role_arn: str | None = None, external_id: str | None = None,
                 region: str | None = None, endpoint_url: str | None = None, config: Config | None = None,
                 base_factory: Callable[[str], Any] | None = None, session_name: str = ROLE_SESSION_NAME,
                 duration_s: int | None = None):
        self.role_arn = role_arn or None
        self.duration_s = duration_s  # the assumed credentials' lifetime (None: the role's default)
        self.external_id = external_id or None
        self.region = region or default_region()
        self.endpoint_url = endpoint_url or None
        self.config = config or DEFAULT_CONFIG
        self.session_name = session_name
        self._base_factory = base_factory or _base_session
        self._session: Any = None
        self.assumed = 0  # AssumeRole calls made (the first, then each refresh)

    def __repr__(self) -> str:  # no credentials in here, ever
        return f"AwsSession(role_arn={self.role_arn!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    async def _assume(self) -> dict[str, Any]:
        params: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name}
        if self.external_id:
            params["ExternalId"] = self.external_id
        if self.duration_s:
            params["DurationSeconds"] = self.duration_s
        base = self._base_factory(self.region)
        try:
            async with base.client("sts", region_name=self.region, endpoint_url=self.endpoint_url,
                                   config=self.config) as sts:
                creds = (await sts.assume_role(**params))["Credentials"]
        except (ClientError, BotoCoreError) as e:
            raise collect_error(e, "sts", "AssumeRole", str(self.role_arn)) from e
        self.assumed += 1
        expiry = creds["Expiration"]
        if isinstance(expiry, datetime):
            expiry = (expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)).isoformat()
        log.info("assumed %s (session %s)", self.role_arn, self.session_name)
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": expiry}

    async def session(self) -> Any:
        """The aioboto3 session every client comes from (assuming the role on first use)."""
        if self._session is not None:
            return self._session
        if not self.role_arn:
            self._session = self._base_factory(self.region)
            return self._session
        import aioboto3
        from aiobotocore.credentials import AioRefreshableCredentials
        from aiobotocore.session import AioSession

        first = await self._assume()  # fails here, with its reason, when the role cannot be assumed
        creds = AioRefreshableCredentials.create_from_metadata(first, refresh_using=self._assume,
                                                               method="assume-role")
        core = AioSession()
        core._credentials = creds  # the documented way botocore sessions take refreshable credentials
        self._session = aioboto3.Session(botocore_session=core, region_name=self.region)
        return self._session

    @asynccontextmanager
    async def client(self, service: str, region: str | None = None):  # type: ignore[no-untyped-def]
        session = await self.session()
        async with session.client(service, region_name=region or self.region, endpoint_url=self.endpoint_url,
                                  config=self.config) as c:
            yield c

    async def account_id(self) -> str:
        """The account these credentials read (``sts:GetCallerIdentity`` needs no permission)."""
        try:
            async with self.client("sts") as sts:
                return str((await sts.get_caller_identity())["Account"])
        except (ClientError, BotoCoreError) as e:
            raise collect_error(e, "sts", "GetCallerIdentity", "the credentials") from e


async def session_for(account: Any, settings: Any = None, *, config: Config | None = None,
                      base_factory: Callable[[str], Any] | None = None) -> AwsSession:
    """The session that reads ``account`` (its role and ExternalId, first region, the settings' endpoint)."""
    regions = list(getattr(account, "regions", None) or [])
    return AwsSession(role_arn=getattr(account, "role_arn", None), external_id=getattr(account, "external_id", None),
                      region=regions[0] if regions else None,
                      endpoint_url=getattr(settings, "aws_endpoint_url", None) if settings is not None else None,
                      config=config, base_factory=base_factory)
