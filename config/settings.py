"""The one settings object: everything configurable comes from the environment (see README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COSTDNA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("costdna", appauthor=False)),
                           description="where synthetic orgs, caches and the SQLite database live")
    tag_rules: Path | None = Field(default=None, description="YAML file with owner-tag keys and value rewrites")
    workers: int | None = Field(default=None, description="processes for parsing CloudTrail (default: all cores)")
    seed: int = Field(default=0, description="seed for the synthetic org and model training")
    # Storage and jobs. These two keep their conventional names (no COSTDNA_ prefix).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "COSTDNA_DATABASE_URL"),
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/costdna.db")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "COSTDNA_REDIS_URL"),
        description="arq's Redis; without it jobs run in-process")
    secret_key: SecretStr | None = Field(
        default=None, description="key that encrypts stored chat tokens; default: a key file in data_dir")
    api_token: SecretStr | None = Field(default=None, description="bearer token for the web process's /status")
    queue_name: str = Field(default="costdna", description="arq queue name")
    job_timeout: int = Field(default=3600, description="seconds a job may run before it is cancelled")
    job_tries: int = Field(default=3, description="attempts per job on transient errors")
    # A running job holds a lease that its worker renews every job_heartbeat_s; a worker that dies
    # (SIGKILL, OOM, a deploy) stops renewing, and another worker takes the job once job_lease_s has
    # passed since the last renewal -- instead of arq's own job_timeout + 10 s (an hour by default).
    # The lease must outlast a few missed beats (a busy event loop, a Redis blip) so that a live but
    # slow job is never taken over; it is raised to at least 3 beats (see jobs.lease).
    job_heartbeat_s: float = Field(default=10.0, gt=0, description="seconds between a running job's lease renewals")
    job_lease_s: float = Field(default=45.0, gt=0, description="seconds after its last renewal that a dead "
                                                               "worker's job is taken by another worker")

    # Chat. Slack's own variable names.
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None,
                                                   validation_alias=AliasChoices("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_client_id: str | None = Field(default=None, validation_alias=AliasChoices("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_CLIENT_SECRET"))
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias=AliasChoices("SLACK_API_URL"),
                               description="Slack Web API base URL (a local stand-in in tests)")
    discord_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("DISCORD_TOKEN"),
                                            description="the Discord application's bot token")
    discord_guild_id: int | None = Field(default=None, validation_alias=AliasChoices("DISCORD_GUILD_ID"),
                                         description="sync /costdna to this guild only (instant); else globally")
    discord_api_url: str = Field(default="https://discord.com/api/v10",
                                 validation_alias=AliasChoices("DISCORD_API_URL"),
                                 description="Discord REST base URL (a local stand-in in tests)")
    aws_endpoint_url: str | None = Field(default=None, description="AWS API endpoint override (a local emulator)")
    approvers: str = Field(default="", description="comma-separated chat user ids allowed to approve tag writes "
                                                   "(single-workspace mode; with OAuth the installer is the first)")
    confidence_threshold: float = Field(default=0.70, description="proposals and 'attributable' need this confidence")
    tag_key: str = Field(default="team", description="the owner tag key costdna writes")
    # The watch's circuit breaker: past max(3 x an account's usual hourly alerts, the floor), or past the
    # cap, an hour's further alerts are held and one "alert storm" summary goes out instead.
    alerts_storm_cap: int = Field(default=20, ge=1, description="most alerts one account sends in an hour")
    alerts_storm_floor: int = Field(default=5, ge=1, description="alerts an hour always allowed before the "
                                                                  "3x-usual-volume rule holds the rest")
    slack_post_interval_s: float = Field(default=1.1, ge=0, description="seconds between posts to one Slack "
                                                                       "channel (Slack allows about 1/s)")
    # The ask agent. Offline by default; an OpenAI-compatible LLM chooses and chains the same read-only
    # tools when a key is set (the SDK's own variable names).
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_BASE_URL"),
                                        description="OpenAI-compatible endpoint (default: OpenAI's)")
    llm_model: str = Field(default="gpt-4o-mini", description="model the ask agent's LLM mode uses")
    llm_timeout_s: float = Field(default=20.0, gt=0, description="seconds one LLM request may take")
    llm_max_steps: int = Field(default=6, ge=1, le=20, description="tool-calling rounds before the offline answer")
    ask_thread_ttl_h: float = Field(default=24.0, gt=0, description="hours a Slack thread's ask context is kept")
    required_tags: str = Field(default="", description="comma-separated tag keys tag_compliance requires "
                                                       "(default: the owner tag key)")
    org_file: Path | None = Field(default=None, description="YAML: teams -> business units -> business groups")

    def required_tag_keys(self) -> tuple[str, ...]:
        keys = tuple(k.strip() for k in self.required_tags.split(",") if k.strip())
        return keys or (self.tag_key,)

    def approver_ids(self) -> list[str]:
        return [a.strip() for a in self.approvers.split(",") if a.strip()]

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'costdna.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
