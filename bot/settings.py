"""The one settings object: everything configurable comes from the environment (see README)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COSTDNA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("costdna", appauthor=False)),
                           description="where synthetic orgs, caches and the SQLite database live")
    tag_rules: Path | None = Field(default=None, description="YAML file with owner-tag keys and value rewrites")
    workers: int | None = Field(default=None, description="processes for parsing CloudTrail (default: all cores)")
    seed: int = Field(default=0, description="seed for the synthetic org and model training")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
