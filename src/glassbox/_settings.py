"""One Settings model: ``GLASSBOX_*`` environment variables, standard ``OTEL_*`` honoured.

Arguments given to :func:`glassbox.instrument` win over the environment. Secrets
(metrics token, basic-auth credentials) come from the environment or from files
named by ``*_FILE`` variables, never from files glassbox writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from glassbox._auth import Protection
from glassbox.exceptions import ConfigurationError
from glassbox.metrics.catalogue import (
    DEFAULT_BUCKETS,
    DEFAULT_EXCLUDED_PATHS,
    check_buckets,
    check_metric_name,
)

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything ``glassbox.instrument`` can be told, with its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="GLASSBOX_", extra="forbid", populate_by_name=True, frozen=True
    )

    service: str = Field(
        "app",
        min_length=1,
        validation_alias=AliasChoices("service", "GLASSBOX_SERVICE", "OTEL_SERVICE_NAME"),
    )
    version: str = "0.0.0"
    env: str = Field(
        "dev",
        validation_alias=AliasChoices("env", "GLASSBOX_ENV", "DEPLOYMENT_ENVIRONMENT"),
    )
    namespace: str | None = None
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    metrics_path: str = "/metrics"
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    excluded_paths: tuple[str, ...] = DEFAULT_EXCLUDED_PATHS
    exclude: tuple[str, ...] = ()
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    metrics_basic_auth: SecretStr | None = None
    metrics_basic_auth_file: Path | None = None
    health_prefix: str = "/health"
    health_token: SecretStr | None = None
    health_token_file: Path | None = None
    health_pass_ttl: float = Field(2.0, ge=0)
    health_fail_ttl: float = Field(0.5, ge=0)
    health_deadline: float = Field(0.8, gt=0, le=60)
    logs: bool = True
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    access_log: bool = True
    access_log_sample: float = Field(1.0, ge=0, le=1)
    request_id: bool = True
    tracing: bool = True
    trace_sample_ratio: float | None = Field(None, ge=0, le=1)
    exemplars: bool = True
    process_metrics: bool = True
    multiprocess: bool | None = None
    multiprocess_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices(
            "multiprocess_dir", "GLASSBOX_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"
        ),
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return check_metric_name(value, where="namespace") if value else None

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return check_buckets(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        """``warning`` as well as ``WARNING``, as uvicorn and gunicorn spell it."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("metrics_path", "health_prefix")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/', e.g. '/{value}'")
        return value

    @property
    def all_excluded_paths(self) -> tuple[str, ...]:
        """The one exclusion list: the defaults plus ``exclude``."""
        return (*self.excluded_paths, *self.exclude)

    def metrics_protection(self) -> Protection:
        """The protection for ``/metrics`` from token/basic-auth settings or their files."""
        token = _secret(self.metrics_token, self.metrics_token_file, "metrics_token")
        basic_raw = _secret(
            self.metrics_basic_auth, self.metrics_basic_auth_file, "metrics_basic_auth"
        )
        basic: tuple[str, str] | None = None
        if basic_raw is not None:
            user, sep, password = basic_raw.partition(":")
            if not sep or not user or not password:
                raise ConfigurationError(
                    "GLASSBOX_METRICS_BASIC_AUTH must look like 'user:password'"
                    " (both parts non-empty)"
                )
            basic = (user, password)
        return Protection(token=token, basic=basic)

    def health_protection(self) -> Protection:
        """Protection of ``/health/detailed`` (``GLASSBOX_HEALTH_TOKEN`` or its file)."""
        return _health_protection(self)


def _health_protection(settings: Settings) -> Protection:
    token = _secret(settings.health_token, settings.health_token_file, "health_token")
    return Protection(token=token)


def _secret(value: SecretStr | None, path: Path | None, name: str) -> str | None:
    env = f"GLASSBOX_{name.upper()}"
    if value is not None and path is not None:
        raise ConfigurationError(f"set {env} or {env}_FILE, not both")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{env}_FILE names a file that cannot be read ({exc.strerror})"
            ) from exc
        if not text:
            raise ConfigurationError(f"{env}_FILE names an empty file")
        return text
    if value is not None:
        secret = value.get_secret_value()
        if not secret:
            raise ConfigurationError(f"{env} is set but empty")
        return secret
    return None


_SECRETISH = re.compile(r"token|auth|secret|password|key", re.IGNORECASE)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` on top; errors name the variable."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            source = f"argument {field}=" if field in given else f"GLASSBOX_{field.upper()}="
            # a value may be a secret (or one typed into the wrong field): never echo
            # values of unknown fields or of fields that hold or name secrets
            hide = err["type"] == "extra_forbidden" or _SECRETISH.search(field)
            shown = "<hidden>" if hide else repr(err.get("input"))
            problems.append(f"{source}{shown}: {err['msg']}")
        raise ConfigurationError("invalid glassbox settings: " + "; ".join(problems)) from None
