"""Delivery through the outbox: every email and webhook is a row in app.outbox before anything is
sent, keyed by an idempotency key (one per scheduled run and recipient, or alert transition and
channel), so that a retry or a second scheduler never makes a second row.

A scheduler claims a due row (FOR UPDATE SKIP LOCKED), marks it `sending` with a lease, sends,
and marks it `sent`; a failure schedules the next attempt with exponential backoff
(DELIVERY_BACKOFF_SECONDS doubling up to an hour) until DELIVERY_MAX_ATTEMPTS,
then `failed` (shown on the admin page). A process that dies mid-send leaves the row `sending`
until its lease ends; the next attempt then sends again (SMTP cannot tell us whether the first got
through: the window is the instant between the server's "250 OK" and the row being marked sent),
logs that it does, and the message's Message-ID and the webhook's Idempotency-Key header are the
same on both, so that receivers can drop the repeat.
"""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import mimetypes
import smtplib
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from data.audit import record
from data.db import frame
from data.settings import Settings, load_settings
from reports.alert_messages import render_alert

log = logging.getLogger("reports.delivery")
BACKOFF_MAX_SECONDS = 3600
SEND_LEASE_SECONDS = 600       # longer than the worst send: SMTP's 30 s a step on a slow link, or a webhook


class DeliveryError(RuntimeError):
    """A send failed; the message says why (stored as the row's last error)."""


ENQUEUE_SQL = """
    INSERT INTO app.outbox (idempotency_key, channel, target, payload, source)
    VALUES (:k, :c, :t, CAST(:p AS jsonb), :s) ON CONFLICT (idempotency_key) DO NOTHING"""


def enqueue(conn: Connection, *, channel: str, target: str, payload: dict, key: str, source: str) -> bool:
    """Records a delivery to make; returns False when one with this idempotency key exists (a
    retry of the same run or transition), which is then left as it is."""
    return bool(conn.execute(sa.text(ENQUEUE_SQL), outbox_row(channel, target, payload, key, source)).rowcount)


def outbox_row(channel: str, target: str, payload: dict, key: str, source: str) -> dict:
    """The parameters of ENQUEUE_SQL for one delivery."""
    return {"k": key, "c": channel, "t": target, "p": json.dumps(payload, default=str), "s": source}


def enqueue_many(conn: Connection, rows: list[dict]) -> int:
    """Records many deliveries (outbox_row's) in one statement; returns how many were new. The rows
    travel as one JSON document (json.dumps is C; psycopg dumps arrays of text in Python)."""
    if not rows:
        return 0
    return conn.execute(sa.text("""
        INSERT INTO app.outbox (idempotency_key, channel, target, payload, source)
        SELECT k, c, t, CAST(p AS jsonb), s FROM json_to_recordset(CAST(:rows AS json))
                                               AS u(k text, c text, t text, p text, s text)
        ON CONFLICT (idempotency_key) DO NOTHING"""), {"rows": json.dumps(rows)}).rowcount


def backoff_seconds(attempts: int, base: int) -> int:
    """Seconds before attempt attempts + 1: base, 2×base, 4×base, … up to an hour. The attempts
    live in app.outbox (next_attempt_at), across processes and restarts, so an in-process retry
    loop (tenacity's) does not fit; the curve is this one line."""
    return max(base, min(base * 2 ** (max(1, attempts) - 1), BACKOFF_MAX_SECONDS))


@dataclass
class Claimed:
    delivery_id: int
    idempotency_key: str
    channel: str
    target: str
    payload: dict
    attempts: int
    interrupted: bool = False   # an earlier attempt's lease ran out mid-send: it may have arrived


def _claim(engine: Engine, worker: str, delivery_id: int | None = None) -> Claimed | None:
    """Claims the next due delivery (or the one with delivery_id, if it is due)."""
    with engine.begin() as conn:
        row = conn.execute(sa.text("""
            WITH next AS (
                SELECT delivery_id, status = 'sending' AS interrupted FROM app.outbox
                WHERE ((status = 'pending' AND next_attempt_at <= now())
                       OR (status = 'sending' AND lease_until < now()))
                  AND (CAST(:id AS bigint) IS NULL OR delivery_id = :id)
                ORDER BY next_attempt_at, delivery_id
                FOR UPDATE SKIP LOCKED LIMIT 1)
            UPDATE app.outbox o SET status = 'sending', attempts = o.attempts + 1,
                   lease_until = now() + make_interval(secs => :lease)
            FROM next WHERE o.delivery_id = next.delivery_id
            RETURNING o.delivery_id, o.idempotency_key, o.channel, o.target, o.payload, o.attempts,
                      next.interrupted"""),
            {"lease": SEND_LEASE_SECONDS, "id": delivery_id}).mappings().first()
    return Claimed(**row) if row else None


def deliver_due(engine: Engine, *, settings: Settings | None = None, limit: int = 100,
                stop: Callable[[], bool] | None = None,
                worker: str = "") -> dict:
    """Sends up to limit due deliveries; returns {"sent", "retry", "failed"} counts."""
    s = settings or load_settings()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for _ in range(limit):
        if stop is not None and stop():
            break
        item = _claim(engine, worker)
        if item is None:
            break
        counts[deliver(engine, item, s)] += 1
    return counts


def deliver(engine: Engine, item: Claimed, s: Settings) -> str:
    """Sends one claimed delivery and records the outcome; returns "sent", "retry" or "failed"."""
    # The claim is (row, attempts): a late answer of a claim whose lease ran out and was taken
    # over changes nothing.
    mine = {"id": item.delivery_id, "a": item.attempts}
    if item.interrupted:
        log.warning("%s to %s (%s): an earlier attempt stopped mid-send (its process died); sending again with the "
                    "same %s, by which the receiver can drop a repeat", item.channel, item.target,
                    item.idempotency_key, "Message-ID" if item.channel == "email" else "Idempotency-Key")
    try:
        send(item, s)
    except Exception as ex:  # noqa: BLE001 - any failure of one delivery is that delivery's, recorded on it
        reason = str(ex) if isinstance(ex, DeliveryError) else f"{type(ex).__name__}: {ex}"
        final = item.attempts >= s.delivery_max_attempts
        delay = backoff_seconds(item.attempts, s.delivery_backoff_seconds)
        with engine.begin() as conn:
            conn.execute(sa.text("""
                UPDATE app.outbox SET status = :st, last_error = :e, lease_until = NULL,
                       next_attempt_at = now() + make_interval(secs => :d)
                WHERE delivery_id = :id AND attempts = :a AND status = 'sending'"""),
                {**mine, "st": "failed" if final else "pending", "e": reason[:2000], "d": delay})
        log.warning("%s to %s failed (attempt %s%s): %s", item.channel, item.target, item.attempts,
                    ", giving up" if final else f", next in {delay:.0f} s", reason)
        return "failed" if final else "retry"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE app.outbox SET status = 'sent', sent_at = now(), lease_until = NULL, "
                             "last_error = '' WHERE delivery_id = :id AND attempts = :a AND status = 'sending'"),
                     mine)
    log.info("%s sent to %s (%s)", item.channel, item.target, item.idempotency_key)
    return "sent"


def deliver_now(engine: Engine, delivery_id: int, *, settings: Settings | None = None) -> tuple[str, str]:
    """Sends one queued delivery at once (a test notification from the page); returns (outcome,
    error). Not due or taken by a scheduler: ("queued", "")."""
    item = _claim(engine, "page", delivery_id)
    if item is None:
        return "queued", ""
    outcome = deliver(engine, item, settings or load_settings())
    with engine.connect() as conn:
        error = conn.execute(sa.text("SELECT last_error FROM app.outbox WHERE delivery_id = :id"),
                             {"id": delivery_id}).scalar() or ""
    return outcome, error


def send(item: Claimed, s: Settings) -> None:
    payload = item.payload
    if "alert" in payload:
        # An alert's notification keeps its facts; its bodies are written now.
        payload = render_alert(payload)
    if item.channel == "email":
        send_email(item.target, payload, s, message_id=item.idempotency_key)
    elif item.channel == "webhook":
        post_webhook(item.target, payload.get("json") or {}, s, key=item.idempotency_key)
    else:
        raise DeliveryError(f"unknown channel {item.channel!r}")


def one_line(text: str) -> str:
    """text for a mail header: names from users and loaded files may hold line breaks and other
    control characters (a vendor called "A\r\nBcc: …"), which the email package refuses, failing that
    delivery on every attempt, and which would end a header elsewhere. They become spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())


def send_email(to: str, payload: dict, s: Settings, *, message_id: str) -> None:
    """Sends one message over SMTP (SMTP_*): text and HTML bodies, the file attached if any."""
    if not s.smtp_host:
        raise DeliveryError("SMTP_HOST is not set: set it (and SMTP_PORT, SMTP_FROM) so that email can be sent")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = s.smtp_from, to, one_line(payload.get("subject") or "Marketplace BI")
    msg["Date"] = formatdate(localtime=False)
    # The same on every attempt at this delivery, so that a receiver can drop a repeat.
    msg["Message-ID"] = f"<{hashlib.sha256(message_id.encode()).hexdigest()[:32]}@marketplace-bi>"
    msg.set_content(payload.get("text", ""))
    if payload.get("html"):
        msg.add_alternative(payload["html"], subtype="html")
    attachment = payload.get("attachment")
    if attachment:
        path = Path(attachment["path"])
        if not path.exists():
            raise DeliveryError(f"the file to attach is gone ({path.name}): it may have expired")
        mime = attachment.get("mime") or mimetypes.guess_type(attachment["filename"])[0] or "application/octet-stream"
        main, _, sub = mime.partition("/")
        msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=attachment["filename"],
                           params={"charset": "utf-8"} if main == "text" else {})
    try:
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as ex:
        raise DeliveryError(f"SMTP {s.smtp_host}:{s.smtp_port}: {ex}") from None


NOT_ALLOWED = ("webhook: its address is not allowed: webhooks call public internet addresses only (an admin can "
               "allow intranet networks with WEBHOOK_ALLOWED_NETWORKS)")


# IPv6 ranges that carry an IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible and -translated)
# or are deprecated (site-local): a name answering with one of them could reach an internal IPv4
# host through a translator, so they are refused unless allowed by name.
_TUNNELS = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "::ffff:0:0:0/96", "fec0::/10"))


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, s: Settings) -> bool:
    """Whether a webhook may call ip: a public internet address, or one in WEBHOOK_ALLOWED_NETWORKS.
    Loopback, private, link-local (cloud metadata), shared and reserved addresses are refused, an
    IPv4-mapped IPv6 address as its IPv4, and IPv6 forms that carry an IPv4 address (_TUNNELS)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in s.webhook_allowed_networks):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _TUNNELS):
        return False
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str, s: Settings) -> urllib.parse.SplitResult:
    """Raises DeliveryError for what a saved webhook URL may not hold (credentials, an address
    literal or localhost that address_allowed refuses); returns its parts. Host names are resolved
    and checked when a webhook is sent."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise DeliveryError("webhook: a URL with a user name or password is not allowed; put a token in the path "
                            "or the query instead")
    host = (parts.hostname or "").lower()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = ipaddress.ip_address("127.0.0.1") if host == "localhost" or host.endswith(".localhost") else None
    if literal is not None and not address_allowed(literal, s):
        raise DeliveryError(NOT_ALLOWED)
    return parts


def _resolve(parts: urllib.parse.SplitResult, port: int, s: Settings) -> list[str]:
    """The addresses to call for a webhook's host, in order: every address its name resolves to
    must be allowed (else DeliveryError, with the details only in the log); the request then goes
    to the addresses checked, so that a second lookup cannot answer differently (DNS rebinding)."""
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as ex:
        log.warning("webhook host %s does not resolve: %s", parts.hostname, ex)
        raise DeliveryError("webhook: its host name does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    refused = [str(a) for a in addresses if not address_allowed(a, s)]
    if refused or not addresses:
        log.warning("webhook host %s refused: it resolves to %s", parts.hostname, ", ".join(refused) or "nothing")
        raise DeliveryError(NOT_ALLOWED)
    return [str(a) for a in dict.fromkeys(addresses)]


def post_webhook(url: str, body: dict, s: Settings, *, key: str) -> None:
    """POSTs body as JSON with an Idempotency-Key header to an allowed address (see _resolve);
    any 2xx is success, redirects are not followed, HTTP(S)_PROXY is not used (the check is of the
    receiver's address). Failures say what happened in general terms
    (the HTTP status of an allowed receiver); the details go to the log, never to the page that
    asked, which would otherwise probe the network from the server."""
    parts = check_webhook_url(url, s)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    addresses = _resolve(parts, port, s)
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = cls(parts.hostname, port, timeout=s.webhook_timeout_seconds)

    def connect(_, timeout, *args):
        """Connects to the addresses checked, one after the other; TLS still verifies the
        certificate against the host name."""
        for i, address in enumerate(addresses):
            try:
                return socket.create_connection((address, port), timeout, *args)
            except OSError:
                if i == len(addresses) - 1:
                    raise
    conn._create_connection = connect
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    data = json.dumps(body, default=str).encode("utf-8")
    try:
        conn.request("POST", path, body=data, headers={
            "Content-Type": "application/json", "User-Agent": "marketplace-bi", "Idempotency-Key": key})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as ex:
        log.warning("webhook %s://%s:%s failed: %s: %s", parts.scheme, parts.hostname, port, type(ex).__name__, ex)
        raise DeliveryError("webhook: no HTTP answer (the connection failed, timed out or was not HTTP)") from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook: the receiver answered HTTP {status}")


def fetch_failed_deliveries(conn: Connection, limit: int = 200) -> pd.DataFrame:
    """Deliveries that gave up, newest first, for the admin page."""
    return frame(conn.execute(sa.text("""
        SELECT delivery_id, channel, target, source, attempts, last_error, created_at
        FROM app.outbox WHERE status = 'failed' ORDER BY created_at DESC LIMIT :n"""), {"n": limit}))


def fetch_waiting_deliveries(conn: Connection) -> int:
    """How many deliveries wait to be sent or retried."""
    return conn.execute(sa.text("SELECT count(*) FROM app.outbox WHERE status IN ('pending', 'sending')")).scalar()


def retry_delivery(conn: Connection, delivery_id: int, *, actor: str = "") -> bool:
    """Puts a failed delivery back in the queue (admin action); the idempotency key is kept."""
    done = bool(conn.execute(sa.text("""
        UPDATE app.outbox SET status = 'pending', next_attempt_at = now(), attempts = 0, last_error = ''
        WHERE delivery_id = :id AND status = 'failed'"""), {"id": delivery_id}).rowcount)
    if done:
        record(conn, "delivery.retry", actor=actor, target=str(delivery_id))
    return done
