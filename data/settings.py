"""Settings read from environment variables, with every default in one place."""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# (variable, default, meaning): the README's configuration table is generated from this list.
ENV_VARS: list[tuple[str, str, str]] = [
    ("DATABASE_URL", "", "PostgreSQL URL of the app's own connection. Empty: start or join the embedded server in DATA_DIR/pg."),
    ("ANALYTICS_DATABASE_URL", "", "Optional read replica for the pages' queries. Empty: DATABASE_URL."),
    ("APP_TIMEZONE", "UTC", "Time zone of reporting days, weeks and months (an IANA name such as Europe/Berlin)."),
    ("DATA_DIR", ".data", "Where the embedded PostgreSQL server (and, by default, exports) live, relative to the project."),
    ("DB_NAME", "marketplace", "Database created on the embedded server."),
    ("ANALYST_DB_ROLE", "bi_analyst", "Login role for analysts' SQL: SELECT on schema mart only."),
    ("ANALYST_DB_PASSWORD", "", "Password for that role on an external server (the embedded one trusts local sockets)."),
    ("DEMO_ORDERS", "1000000", "Order lines that `make run` seeds into an empty database."),
    ("ROLLUP_REFRESH_SECONDS", "60", "How often the scheduler folds new and changed orders into the rollups."),
    ("HEARTBEAT_SECONDS", "30", "How often the scheduler writes its heartbeat row."),
    ("FORECASTS_AT", "03:00", "Local time (HH:MM in APP_TIMEZONE) of the nightly forecasts of the total and the top vendors and categories."),
    ("FORECAST_TOP", "5", "How many top vendors and top categories (by GMV over the last 90 days) the nightly forecasts cover besides the total."),
    ("CUSTOMER_SCORES_AT", "02:30", "Local time (HH:MM in APP_TIMEZONE) of the nightly customer scores (RFM, clusters, CLV) as of the day before."),
    ("PEER_BENCHMARKS_AT", "00:30", "Local time (HH:MM in APP_TIMEZONE) after which the scheduler recomputes the vendors' peer benchmarks for the new day (at once when none are stored)."),
    ("AUTH_COOKIE_KEY", "", "Secret (32+ characters) that signs login cookies; also read from AUTH_COOKIE_KEY in .streamlit/secrets.toml. Required outside demo mode."),
    ("DEMO_MODE", "auto", "`auto`: on when DATABASE_URL is empty. In demo mode a missing cookie key is generated into DATA_DIR and `make run` creates demo users."),
    ("SESSION_DAYS", "7", "Days a login lasts before the user must sign in again."),
    ("LOGIN_MAX_FAILURES", "5", "Failed logins for one username within LOGIN_WINDOW_MINUTES that lock it."),
    ("LOGIN_MAX_FAILURES_PER_ADDRESS", "20", "Failed logins from one client address within the window that lock the address."),
    ("LOGIN_WINDOW_MINUTES", "15", "Window in which failed logins are counted."),
    ("LOGIN_LOCK_MINUTES", "15", "How long a lock lasts; it expires by itself."),
    ("SMTP_HOST", "", "Mail server for scheduled reports and alerts. Empty: email deliveries wait in the outbox and say why."),
    ("SMTP_PORT", "25", "Its port (587 with STARTTLS, 465 is not supported: use STARTTLS)."),
    ("SMTP_USER", "", "Login for the mail server, if it needs one."),
    ("SMTP_PASSWORD", "", "Its password."),
    ("SMTP_STARTTLS", "false", "`true`: upgrade the connection with STARTTLS before logging in."),
    ("SMTP_FROM", "marketplace-bi@localhost", "Sender address of reports and alerts."),
    ("APP_BASE_URL", "http://localhost:8501", "The app's address as users reach it: links in emails and webhooks."),
    ("EXPORT_DIR", "", "Where export files are written. Empty: DATA_DIR/exports."),
    ("EXPORT_EXPIRY_DAYS", "7", "Days an export file is kept before the scheduler deletes it."),
    ("EMAIL_ATTACHMENT_MAX_MB", "10", "Larger report files are not attached: the email links to the download instead."),
    ("DELIVERY_MAX_ATTEMPTS", "8", "Attempts at one email or webhook (backing off exponentially) before it is marked failed."),
    ("SCHEDULER_TICK_SECONDS", "5", "How often the scheduler looks for due schedules, queued exports and deliveries."),
    ("EXPORT_WORKERS", "2", "Exports one scheduler makes at once, each on a thread of its own beside the heartbeat, alerts and deliveries."),
    ("MAX_RECIPIENTS", "50", "Most email addresses one scheduled report (all its fan-out values together) or one alert rule may send to."),
    ("MIN_SCHEDULE_MINUTES", "15", "Shortest time between two runs of a scheduled report (cron cadences) and between two reminders of a firing alert."),
    ("DELIVERY_BACKOFF_SECONDS", "30", "Wait before the second attempt at a failed delivery; it doubles with each attempt, up to an hour."),
    ("JOB_LEASE_SECONDS", "120", "How long a running export or scheduled run is held without news before another scheduler takes it over."),
    ("WEBHOOK_TIMEOUT_SECONDS", "10", "Time limit of one webhook call."),
    ("WEBHOOK_ALLOWED_NETWORKS", "", "Private networks webhooks may call, comma-separated (such as 10.20.0.0/16 for an intranet chat server). Empty: public internet addresses only; loopback, private and link-local targets are refused after DNS resolution."),
    ("LOG_FORMAT", "text", "`json`: the scheduler writes one JSON object per log line (time, level, logger, worker, message)."),
    ("TRUSTED_PROXIES", "0", "How many reverse proxies you run in front of the app (0: none). With N, the client address (for lockout and the audit log) is the N-th X-Forwarded-For entry from the right: the address the outermost proxy saw, which a client cannot choose. Reach the app only through them."),
    ("TRUST_FORWARDED_FOR", "false", "Older name: `true` is TRUSTED_PROXIES=1 when TRUSTED_PROXIES is 0."),
]

SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"
MIN_COOKIE_KEY_CHARS = 32


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the variable."""


def _env(name: str) -> str:
    default = next(d for n, d, _ in ENV_VARS if n == name)
    return os.environ.get(name, default).strip()


def _whole(name: str, least: int = 0) -> int:
    raw = _env(name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < least:
        raise SettingsError(f"{name}={raw!r} must be {'greater than zero' if least == 1 else f'at least {least}'}")
    return value


def _networks(name: str) -> tuple:
    """A comma-separated list of networks (10.0.0.0/8, 192.168.1.20, fd00::/8) as ip_network values."""
    out = []
    for part in filter(None, (p.strip() for p in _env(name).split(","))):
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not a network; write addresses or CIDR blocks such as "
                                "10.20.0.0/16, separated by commas") from None
    return tuple(out)


def _positive_int(name: str) -> int:
    return _whole(name, 1)


def _clock(name: str) -> str:
    raw = _env(name)
    hh, sep, mm = raw.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60):
        raise SettingsError(f"{name}={raw!r} is not a time of day; write HH:MM, such as 02:30")
    return f"{int(hh):02d}:{mm}"


@dataclass(frozen=True)
class Settings:
    database_url: str
    analytics_database_url: str
    timezone: str
    data_dir: Path
    db_name: str
    analyst_role: str
    analyst_password: str
    demo_orders: int
    rollup_refresh_seconds: int
    heartbeat_seconds: int
    cookie_key: str = ""
    demo_mode: bool = False
    session_days: int = 7
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_minutes: int = 15
    login_lock_minutes: int = 15
    trusted_proxies: int = 0
    customer_scores_at: str = "02:30"
    forecasts_at: str = "03:00"
    peer_benchmarks_at: str = "00:30"
    forecast_top: int = 5
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "marketplace-bi@localhost"
    app_base_url: str = "http://localhost:8501"
    export_dir: Path = PROJECT_ROOT / ".data" / "exports"
    export_expiry_days: int = 7
    email_attachment_max_mb: int = 10
    delivery_max_attempts: int = 8
    delivery_backoff_seconds: int = 30
    work_seconds: int = 5
    export_workers: int = 2
    max_recipients: int = 50
    min_schedule_minutes: int = 15
    job_lease_seconds: int = 120
    webhook_timeout_seconds: int = 10
    webhook_allowed_networks: tuple = ()
    extra: dict = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def embedded(self) -> bool:
        return not self.database_url


def load_settings() -> Settings:
    """Returns Settings from the environment; raises SettingsError naming the bad variable."""
    tz = _env("APP_TIMEZONE") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"APP_TIMEZONE={tz!r} is not a time zone name (try UTC or Europe/Berlin)") from None
    data_dir = Path(_env("DATA_DIR") or ".data")
    if not data_dir.is_absolute():
        data_dir = PROJECT_ROOT / data_dir
    role = _env("ANALYST_DB_ROLE")
    if not role.replace("_", "").isalnum() or not role[:1].isalpha():
        raise SettingsError(f"ANALYST_DB_ROLE={role!r} must be letters, digits and underscores")
    database_url = _env("DATABASE_URL")
    demo = _env("DEMO_MODE").lower() or "auto"
    if demo not in ("auto", "true", "false", "1", "0", "yes", "no", "on", "off"):
        raise SettingsError(f"DEMO_MODE={demo!r} must be auto, true or false")
    return Settings(
        database_url=database_url,
        analytics_database_url=_env("ANALYTICS_DATABASE_URL"),
        timezone=tz,
        data_dir=data_dir,
        db_name=_env("DB_NAME") or "marketplace",
        analyst_role=role,
        analyst_password=_env("ANALYST_DB_PASSWORD"),
        demo_orders=_positive_int("DEMO_ORDERS"),
        rollup_refresh_seconds=_positive_int("ROLLUP_REFRESH_SECONDS"),
        heartbeat_seconds=_positive_int("HEARTBEAT_SECONDS"),
        cookie_key=_env("AUTH_COOKIE_KEY") or _secret("AUTH_COOKIE_KEY"),
        demo_mode=not database_url if demo == "auto" else demo in ("true", "1", "yes", "on"),
        session_days=_positive_int("SESSION_DAYS"),
        login_max_failures=_positive_int("LOGIN_MAX_FAILURES"),
        login_max_failures_per_address=_positive_int("LOGIN_MAX_FAILURES_PER_ADDRESS"),
        login_window_minutes=_positive_int("LOGIN_WINDOW_MINUTES"),
        login_lock_minutes=_positive_int("LOGIN_LOCK_MINUTES"),
        trusted_proxies=_whole("TRUSTED_PROXIES") or int(_bool("TRUST_FORWARDED_FOR")),
        customer_scores_at=_clock("CUSTOMER_SCORES_AT"),
        forecasts_at=_clock("FORECASTS_AT"),
        peer_benchmarks_at=_clock("PEER_BENCHMARKS_AT"),
        forecast_top=_positive_int("FORECAST_TOP"),
        smtp_host=_env("SMTP_HOST"),
        smtp_port=_positive_int("SMTP_PORT"),
        smtp_user=_env("SMTP_USER"),
        smtp_password=_env("SMTP_PASSWORD"),
        smtp_starttls=_bool("SMTP_STARTTLS"),
        smtp_from=_address("SMTP_FROM"),
        app_base_url=_url("APP_BASE_URL"),
        export_dir=_dir(_env("EXPORT_DIR"), data_dir / "exports"),
        export_expiry_days=_positive_int("EXPORT_EXPIRY_DAYS"),
        email_attachment_max_mb=_positive_int("EMAIL_ATTACHMENT_MAX_MB"),
        delivery_max_attempts=_positive_int("DELIVERY_MAX_ATTEMPTS"),
        delivery_backoff_seconds=_positive_int("DELIVERY_BACKOFF_SECONDS"),
        work_seconds=_positive_int("SCHEDULER_TICK_SECONDS"),
        export_workers=_positive_int("EXPORT_WORKERS"),
        max_recipients=_positive_int("MAX_RECIPIENTS"),
        min_schedule_minutes=_positive_int("MIN_SCHEDULE_MINUTES"),
        job_lease_seconds=_positive_int("JOB_LEASE_SECONDS"),
        webhook_timeout_seconds=_positive_int("WEBHOOK_TIMEOUT_SECONDS"),
        webhook_allowed_networks=_networks("WEBHOOK_ALLOWED_NETWORKS"),
    )


def _dir(raw: str, default: Path) -> Path:
    if not raw:
        return default
    path = Path(raw)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _address(name: str) -> str:
    raw = _env(name)
    if not valid_email(raw):
        raise SettingsError(f"{name}={raw!r} is not an email address (name@host)")
    return raw


def _url(name: str) -> str:
    raw = _env(name).rstrip("/")
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={raw!r} must start with http:// or https://")
    return raw


# One address: local part, @, a host (a dotted domain or a single label such as localhost). Not the
# whole of RFC 5322: quoted local parts and comments are refused, which is what mail forms expect.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def valid_email(text: str) -> bool:
    return bool(_EMAIL.match(text or "")) and len(text) <= 254 and ".." not in text


def _bool(name: str) -> bool:
    raw = _env(name).lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise SettingsError(f"{name}={raw!r} must be true or false")
    return raw in ("true", "1", "yes", "on")


def _secret(name: str) -> str:
    """Returns a top-level string from .streamlit/secrets.toml, or "" when absent."""
    if not SECRETS_FILE.exists():
        return ""
    try:
        value = tomllib.loads(SECRETS_FILE.read_text()).get(name, "")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as ex:
        raise SettingsError(f"{SECRETS_FILE} is not valid TOML: {ex}") from None
    if not isinstance(value, str):
        raise SettingsError(f"{name} in {SECRETS_FILE} must be a string")
    return value.strip()
