"""Settings of a tradewire process, resolved from four layers.

Precedence, highest first: command-line flag > ``TRADEWIRE_<NAME>``
environment variable > TOML file (``--config`` / ``TRADEWIRE_CONFIG``) >
built-in default. Every setting has the same name in all layers: the flag
``--http-port``, the variable ``TRADEWIRE_HTTP_PORT`` and the TOML key
``http_port``. Values are validated once, here, with an error that names the
setting and the layer it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from tradewire.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "default_data_dir", "load_settings"]

ENV_PREFIX = "TRADEWIRE_"

Durability = Literal["fsync", "os"]
StoreWriter = Literal["process", "thread"]
LogFormat = Literal["auto", "json", "text"]
SmtpSecurity = Literal["starttls", "tls", "none"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tradewire``, else ``~/.local/share/tradewire``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tradewire"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every setting of ``tradewire serve`` and the other commands."""

    data_dir: Path = msgspec.field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    http_port: int = 8765
    zmq_sub_port: int = 5570
    zmq_router_port: int = 5571
    durability: Durability = "fsync"
    store_writer: StoreWriter = "thread"
    intake_journal: bool = True
    max_frame_bytes: int = 1 << 20
    max_message_bytes: int = 1 << 20
    log_level: str = "INFO"
    log_format: LogFormat = "auto"
    shutdown_grace_seconds: float = 10.0
    session_heartbeat_seconds: float = 15.0
    normal_ttl_seconds: float = 300.0
    ack_timeout_seconds: float = 10.0
    critical_ack_timeout_seconds: float = 15.0
    critical_deadline_seconds: float = 3600.0
    heartbeat_miss_factor: float = 3.0
    heartbeat_cadence_seconds: float = 30.0
    # -- notification channels (docs/reference/config.md#channels) --------------
    critical_channels: str = "ACTIVE_SESSION,PUSH,TELEGRAM,EMAIL"
    normal_channels: str = "ACTIVE_SESSION"
    informational_channels: str = "ACTIVE_SESSION"
    templates_dir: Path | None = None
    channel_http_timeout_seconds: float = 10.0
    chat_webhooks: bool = True
    webhook_allowed_hosts: str = ""
    telegram_bot_token: str = msgspec.field(default="")
    telegram_api_base: str = "https://api.telegram.org"
    telegram_poll: bool = True
    telegram_long_poll_seconds: float = 30.0
    telegram_per_chat_interval_ms: int = 1000
    telegram_overall_per_second: int = 30
    telegram_active_minutes: float = 10.0
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: SmtpSecurity = "starttls"
    smtp_from: str = ""
    email_digest_seconds: float = 60.0
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:operator@localhost"
    push_allow_http: bool = False
    webhook_secret: str = ""
    bridge: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Ingest bridge rules per event type, TOML only: ``[bridge.ORDER_FILLED]``
    ``priority``, ``channels``, ``enabled`` (see ``docs/concepts/bridge.md``)."""

    def __repr__(self) -> str:
        # secrets (bot token, SMTP password, VAPID and webhook keys) never reach a log
        shown = {
            f: ("***" if f in SECRET_SETTINGS and getattr(self, f) else getattr(self, f))
            for f in self.__struct_fields__
        }
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


SECRET_SETTINGS = frozenset(
    {"telegram_bot_token", "smtp_password", "vapid_private_key", "webhook_secret"}
)


_TOML_ONLY = frozenset({"bridge"})  # nested tables: no environment or flag form

# Environment variables are strings; these settings are converted from them.
_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist",
            setting="config",
            hint="pass an existing TOML file with --config or unset TRADEWIRE_CONFIG",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", setting="config"
        ) from None


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name in _FIELDS:
        if name in _TOML_ONLY:
            continue
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            layer[name] = raw
    return layer


def _validate(merged: dict[str, Any], origins: dict[str, str]) -> Settings:
    unknown = sorted(set(merged) - set(_FIELDS))
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown setting {key!r} in {origins.get(key, 'config')}; "
            f"known settings: {', '.join(sorted(_FIELDS))}",
            setting=key,
        )
    for name in ("data_dir", "templates_dir"):
        if isinstance(merged.get(name), str):
            merged[name] = Path(merged[name]).expanduser()
    try:
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        failed = _failed_key(str(exc))
        where = origins.get(failed or "", "config")
        raise ConfigError(
            f"invalid value for {failed or 'a setting'} (from {where}): {exc}", setting=failed
        ) from None
    _check_ports(settings, origins)
    _check_positive(settings, origins)
    _check_bridge(settings, origins)
    return settings


def _check_bridge(settings: Settings, origins: dict[str, str]) -> None:
    from tradewire.bridge.rules import BridgeConfigError, parse_bridge_rules

    try:
        parse_bridge_rules(settings.bridge)
    except BridgeConfigError as exc:
        raise ConfigError(
            f"invalid bridge rule (from {origins.get('bridge', 'config')}): {exc}",
            setting=exc.field,
        ) from None


def _failed_key(message: str) -> str | None:
    marker = "at `$."
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split("`", 1)[0].split(".", 1)[0].split("[", 1)[0]


_POSITIVE = (
    "max_frame_bytes",
    "max_message_bytes",
    "shutdown_grace_seconds",
    "session_heartbeat_seconds",
    "normal_ttl_seconds",
    "ack_timeout_seconds",
    "critical_ack_timeout_seconds",
    "critical_deadline_seconds",
    "heartbeat_miss_factor",
    "heartbeat_cadence_seconds",
    "channel_http_timeout_seconds",
    "telegram_long_poll_seconds",
    "telegram_per_chat_interval_ms",
    "telegram_overall_per_second",
    "telegram_active_minutes",
)


def _check_positive(settings: Settings, origins: dict[str, str]) -> None:
    for name in _POSITIVE:
        value = getattr(settings, name)
        if value <= 0:
            raise ConfigError(
                f"{name} must be positive, got {value} (from {origins.get(name, 'default')})",
                setting=name,
            )


def _check_ports(settings: Settings, origins: dict[str, str]) -> None:
    for name in ("http_port", "zmq_sub_port", "zmq_router_port"):
        port = getattr(settings, name)
        if not 0 <= port <= 65535:
            raise ConfigError(
                f"{name} must be between 0 and 65535, got {port} "
                f"(from {origins.get(name, 'default')})",
                setting=name,
            )


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge default < TOML file < environment < flags and validate.

    ``flags`` holds the command-line values; ``None`` means "not given".
    ``config_file`` falls back to ``TRADEWIRE_CONFIG``.
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        layers.append((f"config file {config_file}", _read_toml(config_file)))
    layers.append(("environment", _env_layer(environ)))
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))
    for origin, layer in layers:
        for key, value in layer.items():
            merged[key] = value
            origins[key] = origin if origin != "environment" else f"${ENV_PREFIX}{key.upper()}"
    return _validate(merged, origins)
