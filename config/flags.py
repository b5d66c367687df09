"""Feature flags for the detection rules, read locally through OpenFeature.

A bad detection rule must be switchable off without a deploy, and without a flag service to run.
So the provider here reads a JSON file (``COSTDNA_FLAGS_FILE``: ``{"spikes.statistical": false}``),
re-read whenever its modification time changes, and environment overrides
(``COSTDNA_FLAG_SPIKES_STATISTICAL=false``), which win over the file. Going through openfeature-sdk
keeps the door open to a real flag service later: only the provider changes.

Flags are configuration, like ``config.settings``: they sit below every layer and import none of them. The
engine never imports this module: the watch job and ``costdna spikes --bundle`` turn ``enabled_rules()``
into ``SpikeConfig.rules``, so both surfaces switch a rule off alike.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

log = logging.getLogger("costdna.flags")

FLAGS_FILE_ENV = "COSTDNA_FLAGS_FILE"
ENV_PREFIX = "COSTDNA_FLAG_"
DOMAIN = "costdna"

# Detection rule flag -> the rule name engine.spikes.SpikeConfig.rules uses. All default on.
RULE_FLAGS: dict[str, str] = {
    "spikes.statistical": "statistical",
    "spikes.cold_start": "cold_start",
    "spikes.novelty": "novelty",
    "spikes.early_warning": "early_warning",
}

_TRUE = {"1", "true", "yes", "on", "enabled"}
_FALSE = {"0", "false", "no", "off", "disabled"}


def env_name(flag: str) -> str:
    """``spikes.cold_start`` -> ``COSTDNA_FLAG_SPIKES_COLD_START``."""
    return ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in flag).upper()


def _parse_text(text: str) -> Any:
    """An environment value as the JSON file would have held it: bool, number or string."""
    t = text.strip()
    if t.lower() in _TRUE:
        return True
    if t.lower() in _FALSE:
        return False
    try:
        return orjson.loads(t)
    except orjson.JSONDecodeError:
        return t


class FileEnvProvider(AbstractProvider):
    """OpenFeature provider over a local JSON file plus ``COSTDNA_FLAG_*`` environment overrides.

    A missing or unreadable file means "no flags set" (every caller's default holds) and one log line,
    never an exception: flags must not be able to take the bot down.
    """

    def __init__(self, path: str | Path | None = None, environ: Mapping[str, str] | None = None):
        self._path = Path(path) if path else None
        self._environ = environ
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._flags: dict[str, Any] = {}

    def get_metadata(self) -> Metadata:
        return Metadata(name="costdna-file-env")

    def _file_path(self) -> Path | None:
        if self._path is not None:
            return self._path
        p = (self._environ if self._environ is not None else os.environ).get(FLAGS_FILE_ENV)
        return Path(p) if p else None

    def _file_flags(self) -> dict[str, Any]:
        path = self._file_path()
        if path is None:
            return {}
        try:
            st = path.stat()
        except OSError:
            return {}
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    doc = orjson.loads(path.read_bytes())
                    self._flags = dict(doc) if isinstance(doc, dict) else {}
                    if not isinstance(doc, dict):
                        log.warning("flags file %s is not a JSON object; ignored", path)
                except (OSError, orjson.JSONDecodeError) as e:
                    log.warning("flags file %s unreadable (%s); ignored", path, e)
                    self._flags = {}
                self._stamp = stamp
            return self._flags

    def lookup(self, key: str) -> tuple[bool, Any]:
        """(found, value): the environment first, then the file."""
        env = self._environ if self._environ is not None else os.environ
        raw = env.get(env_name(key))
        if raw is not None:
            return True, _parse_text(raw)
        flags = self._file_flags()
        if key in flags:
            return True, flags[key]
        return False, None

    def _resolve(self, key: str, default: Any, kinds: tuple[type, ...]) -> FlagResolutionDetails[Any]:
        found, value = self.lookup(key)
        if not found:
            return FlagResolutionDetails(value=default, reason=Reason.DEFAULT)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=ErrorCode.TYPE_MISMATCH,
                                         error_message=f"flag {key!r} is {type(value).__name__}")
        if float in kinds and not isinstance(value, bool):
            value = float(value)
        return FlagResolutionDetails(value=value, reason=Reason.STATIC)

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, (bool,))

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, (str,))

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, (int,))

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, (int, float))

    def resolve_object_details(
        self, flag_key: str, default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._resolve(flag_key, default_value, (list, dict))


_installed = False
_install_lock = threading.Lock()


def install(provider: AbstractProvider | None = None) -> None:
    """Register ``provider`` (default: a FileEnvProvider over the environment) for the costdna domain."""
    global _installed
    with _install_lock:
        api.set_provider(provider or FileEnvProvider(), domain=DOMAIN)
        _installed = True


def _client():
    if not _installed:
        install()
    return api.get_client(domain=DOMAIN)


def flag_bool(name: str, default: bool = True) -> bool:
    return bool(_client().get_boolean_value(name, default))


def flag_number(name: str, default: float) -> float:
    return float(_client().get_float_value(name, float(default)))


def rule_enabled(name: str) -> bool:
    """Whether a detection rule is on; ``name`` is a flag ("spikes.statistical") or a rule ("statistical")."""
    flag = name if name in RULE_FLAGS else f"spikes.{name}"
    return flag_bool(flag, True)


def enabled_rules() -> frozenset[str]:
    """The rules for ``SpikeConfig.rules``: every detection rule whose flag is not switched off."""
    return frozenset(rule for flag, rule in RULE_FLAGS.items() if flag_bool(flag, True))
