"""Vendor users (issue 22): users of role `vendor`, each bound to one or more vendors.

A binding is a row of app.user_vendors. Writing one also makes (or puts back) the database login
role of the user's set of vendors (data.vendor_scope.ensure_vendor_role) in the same transaction,
so a user is never bound to vendors whose role is missing, and a refused binding writes nothing.
The pages a vendor user opens run their queries on that role (data.vendor_scope.vendor_url).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.audit import record
from data.auth import VENDOR, AuthError, User, create_user, fetch_user, lock_user
from data.settings import Settings
from data.vendor_scope import VendorScopeError, ensure_vendor_role


def _ids(vendor_ids: Iterable[int]) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) for v in vendor_ids}))
    except (TypeError, ValueError) as ex:
        raise AuthError(f"Vendor ids must be whole numbers ({ex}).") from None


def _make_role(conn: Connection, ids: tuple[int, ...], settings: Settings, allow_closed: Iterable[int] = ()) -> str:
    try:
        return ensure_vendor_role(conn, ids, settings, allow_closed=allow_closed)
    except VendorScopeError as ex:
        raise AuthError(str(ex)) from None


def create_vendor_user(conn: Connection, username: str, password: str, vendor_ids: Iterable[int], settings: Settings,
                       *, name: str = "", email: str = "", actor: str = "", client_addr: str = "") -> User:
    """Creates a vendor user bound to vendor_ids (at least one, each an existing vendor that is not
    closed) and their database role; raises AuthError (nothing written when the caller rolls back,
    as the transaction helpers do on an exception)."""
    ids = _ids(vendor_ids)
    user = create_user(conn, username, password, VENDOR, name=name, email=email, actor=actor,
                       client_addr=client_addr, vendor_ids=ids)
    role = _make_role(conn, ids, settings)
    _bind(conn, user.user_id, ids, actor)
    record(conn, "user.vendors", actor=actor, target=user.username, client_addr=client_addr,
           detail={"from": [], "to": list(ids), "db_role": role})
    return fetch_user(conn, user.username)


def set_user_vendors(conn: Connection, username: str, vendor_ids: Iterable[int], settings: Settings, *,
                     actor: str = "", client_addr: str = "") -> tuple[int, ...]:
    """Binds a vendor user to exactly vendor_ids (binding the new, unbinding the others); returns the
    ids. The change applies on the user's next page load. Raises AuthError for a user that is not a
    vendor user, no vendor, or an unknown or closed vendor (an already bound closed vendor may stay)."""
    ids = _ids(vendor_ids)
    t = lock_user(conn, username)
    if t.role != VENDOR:
        raise AuthError(f"{t.username!r} is not a vendor user; only vendor users are bound to vendors.")
    if not ids:
        raise AuthError(f"A vendor user needs at least one vendor: to end {t.username!r}'s access, disable the user.")
    before = tuple(conn.execute(sa.text("SELECT vendor_id FROM app.user_vendors WHERE user_id = :u ORDER BY 1"),
                                {"u": t.user_id}).scalars())
    if before == ids:
        return ids
    # A vendor closed since it was bound keeps its binding (its history stays readable); it cannot
    # be bound anew.
    role = _make_role(conn, ids, settings, allow_closed=before)
    conn.execute(sa.text("DELETE FROM app.user_vendors WHERE user_id = :u AND NOT vendor_id = ANY(:ids)"),
                 {"u": t.user_id, "ids": list(ids)})
    _bind(conn, t.user_id, ids, actor)
    record(conn, "user.vendors", actor=actor, target=t.username, client_addr=client_addr,
           detail={"from": list(before), "to": list(ids), "db_role": role})
    return ids


def _bind(conn: Connection, user_id: int, ids: tuple[int, ...], actor: str) -> None:
    conn.execute(sa.text("""
        INSERT INTO app.user_vendors (user_id, vendor_id, bound_by)
        SELECT :u, v, :by FROM unnest(CAST(:ids AS integer[])) v
        ON CONFLICT DO NOTHING"""), {"u": user_id, "ids": list(ids), "by": actor})


def fetch_vendor_choices(conn: Connection) -> pd.DataFrame:
    """Returns (vendor_id, name, category, status) of every vendor, by name: what an admin binds."""
    return pd.read_sql(sa.text("SELECT vendor_id, name, category, status FROM mart.vendors ORDER BY name, vendor_id"),
                       conn)


def fetch_bound_vendors(conn: Connection) -> dict[int, int]:
    """Returns {vendor_id: enabled vendor users bound to it} for every vendor with one: the vendors a
    report sent "to every vendor" reaches."""
    return dict(conn.execute(sa.text("""
        SELECT b.vendor_id, count(*) FROM app.user_vendors b JOIN app.users u ON u.user_id = b.user_id
        WHERE u.role = 'vendor' AND u.disabled_at IS NULL GROUP BY 1 ORDER BY 1""")).all())


# Vendors with an enabled vendor user bound to that vendor alone (whose login role sees it alone).
SINGLE_VENDOR_SCOPES = """
    SELECT DISTINCT b.vendor_id FROM app.user_vendors b JOIN app.users u ON u.user_id = b.user_id
    WHERE u.role = 'vendor' AND u.disabled_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM app.user_vendors o WHERE o.user_id = u.user_id AND o.vendor_id <> b.vendor_id)"""


def fetch_single_vendor_scopes(conn: Connection) -> list[int]:
    """Returns the vendors that an enabled vendor user is bound to alone, in id order: those whose own
    login role exists (made when the user was bound), for figures computed per vendor at night."""
    return conn.execute(sa.text(SINGLE_VENDOR_SCOPES + " ORDER BY 1")).scalars().all()


def fetch_vendors_emails(conn: Connection, vendor_ids: list[int]) -> dict[int, list[str]]:
    """Returns {vendor_id: the email addresses of its enabled vendor users (those with one)} for
    vendor_ids: whom a report or alert sent to every vendor reaches for each vendor."""
    rows = conn.execute(sa.text("""
        SELECT b.vendor_id, array_agg(DISTINCT u.email ORDER BY u.email)
        FROM app.user_vendors b JOIN app.users u ON u.user_id = b.user_id
        WHERE b.vendor_id = ANY(:v) AND u.role = 'vendor' AND u.disabled_at IS NULL AND u.email <> ''
        GROUP BY 1"""), {"v": list(vendor_ids)}).all()
    return {int(v): list(emails) for v, emails in rows}


def fetch_demo_vendors(conn: Connection, n: int = 2) -> list[tuple[int, str]]:
    """Returns (vendor_id, name) of n active vendors for demo vendor users: the biggest by orders
    of the category with the most vendors (so their peer benchmarks have peers)."""
    return [tuple(r) for r in conn.execute(sa.text("""
        WITH cat AS (SELECT category FROM mart.vendors WHERE status = 'active'
                     GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
        SELECT v.vendor_id, v.name FROM mart.vendors v
        JOIN (SELECT vendor_id, sum(all_orders) AS orders FROM mart.rollup_vendor_daily GROUP BY 1) r USING (vendor_id)
        WHERE v.status = 'active' AND v.category = (SELECT category FROM cat)
        ORDER BY r.orders DESC, v.vendor_id LIMIT :n"""), {"n": n}).all()]
