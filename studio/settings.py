"""Configuration from STUDIO_* environment variables; the embedded default needs none."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path("studio-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite under data_dir"
    )
    redis_url: str | None = None
    redis_key_prefix: str = Field(
        default="studio",
        description="Prefix of every Redis key (rate limits, cache): lets installations share one Redis",
    )
    nats_url: str | None = None
    secret_key: str | None = Field(
        default=None,
        description="JWT signing key; generated once into data_dir/secret.key when unset",
    )

    host: str = "127.0.0.1"
    port: int = 8000

    access_token_ttl_seconds: int = Field(default=900, gt=0)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    # A web page session ends after this long without a page view (and at the latest when
    # its login's refresh token expires); see docs/web.md.
    web_session_idle_seconds: int = Field(default=2 * 3600, gt=0)
    jwt_audience: str = "studio-api"
    jwt_issuer: str = "studio-platform"

    # OWASP's minimum for Argon2id: 19 MiB, 2 iterations, parallelism 1.
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    rate_limit_enabled: bool = True
    rate_limit_ip: str = "1200/minute"
    rate_limit_user: str = "1200/minute"
    rate_limit_login: str = "10/minute"

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, gt=0,
                                  description="cap on one uploaded evidence file")

    # Object storage: S3-compatible (AWS S3, MinIO) when s3_bucket is set, else local.
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    s3_presign_downloads: bool = False
    s3_presign_ttl_seconds: int = Field(default=300, gt=0, le=7 * 24 * 3600)

    # Document processing bounds, per file.
    processing_timeout_seconds: float = Field(default=60.0, gt=0)
    processing_max_pages: int = Field(default=5000, gt=0)
    processing_max_zip_entries: int = Field(default=2000, gt=0)
    processing_max_unzipped_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    processing_max_text_chars: int = Field(default=5_000_000, gt=0)

    cache_enabled: bool = True
    cache_ttl_seconds: int = Field(default=30, ge=0)

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    run_workers: bool = True

    # Event delivery: attempts before a failing event is parked, exponential backoff
    # between attempts, how often consumers poll the store without a wake-up.
    event_max_attempts: int = Field(default=5, ge=1)
    event_retry_base_seconds: float = Field(default=1.0, gt=0)
    event_retry_max_seconds: float = Field(default=300.0, gt=0)
    event_poll_interval_seconds: float = Field(default=1.0, gt=0)
    event_batch_size: int = Field(default=100, ge=1, le=10_000)
    # JetStream stream and subject prefix used when nats_url is set.
    nats_stream: str = "STUDIO_EVENTS"
    nats_subject_prefix: str = "studio.events"

    # The AI service (docs/ai.md): which embedder ("auto" takes the neural one when it
    # loads), the statistical embedder's dimension, control suggestions kept per evidence.
    ai_embedder: Literal["auto", "neural", "statistical"] = "auto"
    ai_tfidf_dim: int = Field(default=2048, ge=64, le=65536)
    ai_suggestions: int = Field(default=5, ge=1, le=20)

    # Login throttling (docs/gateway.md), in limits' notation; several limits separated by
    # ";" make a progressive slowdown. Failed logins per account from one address (or from one
    # known device), and per account from devices that never logged in to it; the per-address
    # budget of every attempt is rate_limit_login.
    rate_limit_login_account_ip: str = "5/minute;20/hour;50/day"
    rate_limit_login_account: str = "20/hour;100/day"

    @field_validator("rate_limit_login_account_ip", "rate_limit_login_account")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)  # ValueError on a typo, at start-up rather than at the first login
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'studio.db.engine').resolve()}"

    @cached_property
    def signing_key(self) -> str:
        """The JWT key: configured, or generated once and kept under the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(key)
        tmp.chmod(0o600)
        tmp.replace(path)
        return key
