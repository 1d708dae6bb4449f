"""The configuration file (TOML) read into frozen dataclasses, checked on load.

Every error names the key and the file. Secrets never sit in the file: a
password is read from the environment variable that ``password_env`` names,
or from the output of ``password_command``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.errors import ConfigError

LANGUAGES = ("ca", "es")
MAX_SECONDS = 3600  # the longest timeout a key may set
TLS_MODES = ("ssl", "starttls", "none")
AUTH_POLICIES = ("none", "dkim", "dmarc")
TABLES = (
    "service",
    "rules",
    "licenses",
    "imap",
    "maildir",
    "smtp",
    "outbox",
    "database",
    "security",
)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    address: str
    support: tuple[str, ...]
    timezone: str = "Europe/Madrid"
    language: str = "ca"
    name: str = "LOCALRETMEET"
    message_id_domain: str = ""  # defaults to the domain of ``address``
    daily_reply_cap: int = 10  # replies to one sender in one day, at most


@dataclass(frozen=True, slots=True)
class RulesConfig:
    min_notice_hours: int = 24
    setup_minutes: int = 30
    overrun_minutes: int = 30
    max_participants: int = 300
    horizon_months: int = 12


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """Which senders are believed: see mailbot.parsers.authres."""

    require_authentication: str = "none"  # none | dkim | dmarc
    authserv_id: str = ""  # the border server's name in Authentication-Results


@dataclass(frozen=True, slots=True)
class Secret:
    """Where a password comes from; read only when a connection needs it.

    ``table`` and ``path`` say where it was configured, for error messages.
    """

    env: str = ""
    command: str = ""
    table: str = ""
    path: str = ""

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise self._error(
                    "password_env", f"the environment variable {self.env} is not set"
                )
            return value
        if self.command:
            try:
                done = subprocess.run(
                    shlex.split(self.command),
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
                raise self._error(
                    "password_command", f"could not run: {type(exc).__name__}"
                ) from None
            if done.returncode != 0:
                raise self._error(
                    "password_command", f"exited with status {done.returncode}"
                )
            return done.stdout.rstrip("\n")
        return ""

    def _error(self, key: str, message: str) -> ConfigError:
        full = f"{self.table}.{key}" if self.table else key
        return ConfigError(message, key=full, path=self.path)

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r}, command={'...' if self.command else ''!r})"


@dataclass(frozen=True, slots=True)
class ImapConfig:
    host: str
    port: int = 993
    tls: str = "ssl"
    username: str = ""
    password: Secret = field(default_factory=Secret)
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    people_folder: str = "Support"
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    batch_size: int = 50
    poll_seconds: int = 60  # when the server has no IDLE
    idle_seconds: int = 25 * 60  # IDLE is renewed before the 29 minutes of RFC 2177
    max_message_bytes: int = 25 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MaildirConfig:
    path: Path
    batch_size: int = 50
    poll_seconds: int = 5
    max_message_bytes: int = 25 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    tls: str = "starttls"
    username: str = ""
    password: Secret = field(default_factory=Secret)
    timeout: float = 60.0
    max_attempts: int = 30  # temporary failures are retried, over about a day


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    maildir: Path


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    service: ServiceConfig
    rules: RulesConfig
    pool: tuple[str, ...]
    database: Path
    mailbox: ImapConfig | MaildirConfig
    transport: SmtpConfig | OutboxConfig
    security: SecurityConfig = field(default_factory=SecurityConfig)

    @property
    def message_id_domain(self) -> str:
        return self.service.message_id_domain or self.service.address.split("@")[-1]


def default_config_path() -> Path:
    """``$MAILBOT_CONFIG``, then ``./mailbot.toml``."""
    return Path(os.environ.get("MAILBOT_CONFIG") or "mailbot.toml")


def load_config(path: Path) -> Config:
    """Read and check the configuration file at ``path``."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not valid TOML: not UTF-8 text", path=str(path)) from None
    return parse_config(data, path=path)


def parse_config(data: Mapping[str, Any], *, path: Path) -> Config:
    """Check an already-decoded TOML document; ``path`` is named in errors."""
    reader = _Reader(path)
    reader.no_unknown(data, "", set(TABLES))

    service = reader.table(data, "service", required=True)
    address = reader.address(service, "service.address", required=True)
    support = tuple(
        reader.address_value(item, "service.support")
        for item in reader.strings(service, "service.support", default=[])
    )
    timezone = reader.string(service, "service.timezone", "Europe/Madrid")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise reader.error(
            "service.timezone", f"unknown time zone {timezone!r}"
        ) from None
    language = reader.choice(service, "service.language", LANGUAGES, "ca")
    service_config = ServiceConfig(
        address=address,
        support=support,
        timezone=timezone,
        language=language,
        name=reader.header_text(service, "service.name", "LOCALRETMEET"),
        message_id_domain=reader.string(service, "service.message_id_domain", ""),
        daily_reply_cap=reader.integer(
            service, "service.daily_reply_cap", 10, 1, 100_000
        ),
    )
    reader.finish(service, "service")

    rules = reader.table(data, "rules")
    rules_config = RulesConfig(
        min_notice_hours=reader.integer(rules, "rules.min_notice_hours", 24, 0, 8760),
        setup_minutes=reader.integer(rules, "rules.setup_minutes", 30, 0, 1440),
        overrun_minutes=reader.integer(rules, "rules.overrun_minutes", 30, 0, 1440),
        max_participants=reader.integer(
            rules, "rules.max_participants", 300, 1, 1_000_000
        ),
        horizon_months=reader.integer(rules, "rules.horizon_months", 12, 1, 60),
    )
    reader.finish(rules, "rules")

    licenses = reader.table(data, "licenses", required=True)
    pool = tuple(reader.strings(licenses, "licenses.pool", required=True))
    if not pool:
        raise reader.error("licenses.pool", "must name at least one license")
    if len(set(pool)) != len(pool):
        raise reader.error("licenses.pool", "names a license twice")
    reader.finish(licenses, "licenses")

    database = reader.table(data, "database")
    db_path = reader.path(database, "database.path", "var/mailbot.sqlite3")
    reader.finish(database, "database")

    mailbox = _mailbox(reader, data)
    transport = _transport(reader, data)
    security = _security(reader, data)

    return Config(
        path=path,
        service=service_config,
        rules=rules_config,
        pool=pool,
        database=db_path,
        mailbox=mailbox,
        transport=transport,
        security=security,
    )


def _security(reader: _Reader, data: Mapping[str, Any]) -> SecurityConfig:
    table = reader.table(data, "security")
    require = reader.choice(
        table, "security.require_authentication", AUTH_POLICIES, "none"
    )
    authserv_id = reader.string(table, "security.authserv_id", "").strip()
    if require != "none" and not authserv_id:
        raise reader.error(
            "security.authserv_id",
            f"missing: required when require_authentication is {require!r}",
        )
    if any(char.isspace() or char in ';()"' for char in authserv_id):
        raise reader.error(
            "security.authserv_id", "must be one word, e.g. mx.example.org"
        )
    reader.finish(table, "security")
    return SecurityConfig(
        require_authentication=require, authserv_id=authserv_id.lower()
    )


def _mailbox(reader: _Reader, data: Mapping[str, Any]) -> ImapConfig | MaildirConfig:
    if "imap" in data and "maildir" in data:
        raise reader.error("imap", "give [imap] or [maildir], not both")
    if "maildir" in data:
        table = reader.table(data, "maildir")
        config = MaildirConfig(
            path=reader.path(table, "maildir.path", None),
            batch_size=reader.integer(table, "maildir.batch_size", 50, 1, 1000),
            poll_seconds=reader.integer(table, "maildir.poll_seconds", 5, 1, 86_400),
            max_message_bytes=reader.integer(
                table, "maildir.max_message_bytes", 25 * 1024 * 1024, 1024
            ),
        )
        reader.finish(table, "maildir")
        return config
    if "imap" not in data:
        raise reader.error("imap", "missing: give an [imap] or a [maildir] table")
    table = reader.table(data, "imap")
    tls = reader.choice(table, "imap.tls", TLS_MODES, "ssl")
    config_imap = ImapConfig(
        host=reader.string(table, "imap.host", None),
        port=reader.integer(table, "imap.port", 993 if tls == "ssl" else 143, 1, 65535),
        tls=tls,
        username=reader.string(table, "imap.username", ""),
        password=reader.secret(table, "imap"),
        folder=reader.string(table, "imap.folder", "INBOX"),
        processed_folder=reader.string(table, "imap.processed_folder", "Processed"),
        quarantine_folder=reader.string(table, "imap.quarantine_folder", "Quarantine"),
        people_folder=reader.string(table, "imap.people_folder", "Support"),
        connect_timeout=reader.number(table, "imap.connect_timeout", 30.0),
        read_timeout=reader.number(table, "imap.read_timeout", 120.0),
        batch_size=reader.integer(table, "imap.batch_size", 50, 1, 1000),
        poll_seconds=reader.integer(table, "imap.poll_seconds", 60, 1, 86_400),
        idle_seconds=reader.integer(table, "imap.idle_seconds", 25 * 60, 1, 29 * 60),
        max_message_bytes=reader.integer(
            table, "imap.max_message_bytes", 25 * 1024 * 1024, 1024
        ),
    )
    reader.finish(table, "imap")
    return config_imap


def _transport(reader: _Reader, data: Mapping[str, Any]) -> SmtpConfig | OutboxConfig:
    if "smtp" in data and "outbox" in data:
        raise reader.error("smtp", "give [smtp] or [outbox], not both")
    if "outbox" in data:
        table = reader.table(data, "outbox")
        config = OutboxConfig(maildir=reader.path(table, "outbox.maildir", None))
        reader.finish(table, "outbox")
        return config
    if "smtp" not in data:
        raise reader.error("smtp", "missing: give an [smtp] or an [outbox] table")
    table = reader.table(data, "smtp")
    tls = reader.choice(table, "smtp.tls", TLS_MODES, "starttls")
    config_smtp = SmtpConfig(
        host=reader.string(table, "smtp.host", None),
        port=reader.integer(table, "smtp.port", 465 if tls == "ssl" else 587, 1, 65535),
        tls=tls,
        username=reader.string(table, "smtp.username", ""),
        password=reader.secret(table, "smtp"),
        timeout=reader.number(table, "smtp.timeout", 60.0),
        max_attempts=reader.integer(table, "smtp.max_attempts", 30, 1, 200),
    )
    reader.finish(table, "smtp")
    return config_smtp


class _Reader:
    """Typed access to TOML values; each error names the key and the file."""

    def __init__(self, path: Path) -> None:
        self.file = path
        self.seen: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, key=key, path=str(self.file))

    def _get(self, table: Mapping[str, Any], key: str) -> Any:
        self.seen.add(key)
        return table.get(key.rsplit(".", 1)[-1])

    def table(
        self, data: Mapping[str, Any], key: str, *, required: bool = False
    ) -> Mapping[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                raise self.error(key, f"missing: the [{key}] table is required")
            return {}
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return value

    def no_unknown(self, table: Mapping[str, Any], name: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                full = f"{name}.{key}" if name else key
                raise self.error(full, "unknown key (is it misspelt?)")

    def finish(self, table: Mapping[str, Any], name: str) -> None:
        known = {k.rsplit(".", 1)[-1] for k in self.seen if k.startswith(name + ".")}
        if name in ("imap", "smtp"):
            known |= {"password_env", "password_command"}
        self.no_unknown(table, name, known)
        self.seen.clear()

    def string(self, table: Mapping[str, Any], key: str, default: str | None) -> str:
        value = self._get(table, key)
        if value is None:
            if default is None:
                raise self.error(key, "missing")
            return default
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        return value

    def header_text(self, table: Mapping[str, Any], key: str, default: str) -> str:
        value = self.string(table, key, default)
        if "\r" in value or "\n" in value:
            raise self.error(key, "must not contain a line break")
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str
    ) -> str:
        value = self.string(table, key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}")
        return value

    def integer(
        self,
        table: Mapping[str, Any],
        key: str,
        default: int,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        value = self._get(table, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be a whole number")
        if low is not None and value < low:
            raise self.error(key, f"must be at least {low}")
        if high is not None and value > high:
            raise self.error(key, f"must be at most {high}")
        return value

    def number(self, table: Mapping[str, Any], key: str, default: float) -> float:
        value = self._get(table, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        if not 0 < value <= MAX_SECONDS:
            raise self.error(key, f"must be more than 0 and at most {MAX_SECONDS}")
        return float(value)

    def strings(
        self,
        table: Mapping[str, Any],
        key: str,
        *,
        default: list[str] | None = None,
        required: bool = False,
    ) -> list[str]:
        value = self._get(table, key)
        if value is None:
            if required or default is None:
                raise self.error(key, "missing")
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return value

    def address(self, table: Mapping[str, Any], key: str, *, required: bool) -> str:
        return self.address_value(
            self.string(table, key, None if required else ""), key
        )

    def address_value(self, value: str, key: str) -> str:
        value = value.strip()
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c in value for c in " \r\n<>,;"):
            raise self.error(key, f"{value!r} is not an e-mail address")
        return value.lower()

    def path(self, table: Mapping[str, Any], key: str, default: str | None) -> Path:
        value = Path(self.string(table, key, default))
        if not value.is_absolute():
            value = self.file.parent / value
        return value

    def secret(self, table: Mapping[str, Any], name: str) -> Secret:
        env = self.string(table, f"{name}.password_env", "")
        command = self.string(table, f"{name}.password_command", "")
        if "password" in table:
            raise self.error(
                f"{name}.password",
                "secrets never sit in the file: use password_env or password_command",
            )
        if env and command:
            raise self.error(
                f"{name}.password_env",
                "give password_env or password_command, not both",
            )
        return Secret(env=env, command=command, table=name, path=str(self.file))
