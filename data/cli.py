"""Command line of the data layer: migrate, seed, load, refresh, url, create-user, demo-users."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import date

import sqlalchemy as sa

from data.auth import VENDOR, AuthError, create_user, fetch_user_count, generate_password
from data.db import DatabaseStartError, get_engine, libpq_url
from data.load import ImportValidationError, load_csv
from data.rollups import refresh_rollups
from data.schema import MigrationError, migrate
from data.seed import SeedError, seed
from data.settings import SettingsError, load_settings
from data.vendor_users import create_vendor_user, fetch_demo_vendors


def _cmd_migrate(args: argparse.Namespace) -> int:
    rev = migrate(get_engine())
    print(f"schema at revision {rev}")
    return 0


def _cmd_url(args: argparse.Namespace) -> int:
    print(libpq_url())
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    with get_engine().begin() as conn:
        # A full rebuild takes minutes on large data: say which step it is in.
        r = refresh_rollups(conn, since=args.since, full=args.full,
                            progress=lambda step: print(f"rollups: {step} …", file=sys.stderr, flush=True))
    print(f"rollups: {r.mode}, {r.days} days, {r.customers} customers, {r.elapsed_ms} ms, version {r.version}")
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    try:
        summary = seed(get_engine(), orders=args.orders, seed=args.seed, end=args.end,
                       if_empty=args.if_empty, replace=args.replace, progress=not args.quiet)
    except SeedError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    if summary is None:
        print("mart.orders already has data; nothing seeded (--if-empty)")
    else:
        print(summary)
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    tty = sys.stderr.isatty()
    shown = []

    def progress(message: str) -> None:
        # Large files take minutes: say how far the import got, about once a second.
        shown.append(message)
        print(f"\r{message}\033[K" if tty else message, end="" if tty else "\n", file=sys.stderr, flush=True)

    try:
        result = load_csv(get_engine(), args.table, args.file, mode=args.mode, progress=progress)
    except ImportValidationError as ex:
        print(("\n" if tty and shown else "") + str(ex), file=sys.stderr)
        return 1
    if tty and shown:
        print(file=sys.stderr)
    print(result.summary())
    return 0


def _read_new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("error: no terminal to prompt on; pipe the password with --password-stdin")
    first = getpass.getpass(f"New password for {args.username}: ")
    if getpass.getpass("Repeat it: ") != first:
        raise SystemExit("error: the two passwords differ; nothing was changed")
    return first


def _cmd_create_user(args: argparse.Namespace) -> int:
    vendors = args.vendor or []
    if args.role == VENDOR and not vendors:
        raise SystemExit("error: a vendor user sees only the vendors bound to it: add --vendor ID (one or more)")
    if args.role != VENDOR and vendors:
        raise SystemExit(f"error: --vendor binds a vendor user; a {args.role} sees the whole marketplace")
    password = _read_new_password(args)
    try:
        with get_engine().begin() as conn:
            if args.role == VENDOR:
                user = create_vendor_user(conn, args.username, password, vendors, load_settings(), name=args.name,
                                          email=args.email, actor="cli")
            else:
                user = create_user(conn, args.username, password, args.role, name=args.name, email=args.email,
                                   actor="cli")
    except AuthError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    scope = f" bound to vendor {', '.join(map(str, user.vendor_ids))}" if user.vendor_ids else ""
    print(f"created {user.role} {user.username!r}{scope}")
    return 0


def _cmd_demo_users(args: argparse.Namespace) -> int:
    if not load_settings().demo_mode:
        print("not in demo mode (DATABASE_URL is set): no demo users. Create the first admin with "
              "python -m data create-user NAME --role admin")
        return 0
    with get_engine().begin() as conn:
        # Lock the table so two starts at once cannot both create (and print) the demo users.
        conn.exec_driver_sql("LOCK TABLE app.users IN SHARE ROW EXCLUSIVE MODE")
        if fetch_user_count(conn):
            print("users exist; no demo users created")
            return 0
        made = [(u, r, generate_password(u), "") for u, r in (("admin", "admin"), ("analyst", "analyst"))]
        for username, role, password, _ in made:
            create_user(conn, username, password, role, name=f"Demo {role}", actor="demo")
        for vendor_id, vendor_name in fetch_demo_vendors(conn):
            username = f"vendor{vendor_id}"
            password = generate_password(username)
            create_vendor_user(conn, username, password, [vendor_id], load_settings(), name=f"Demo {vendor_name}",
                               actor="demo")
            made.append((username, VENDOR, password, f" (sees {vendor_name}, vendor {vendor_id}, only)"))
    print("Demo users created. These passwords are shown only once; change them under My account:")
    for username, role, password, scope in made:
        print(f"  {role:<8} username {username:<11} password {password}{scope}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data", description="Marketplace BI data layer")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema (idempotent)").set_defaults(func=_cmd_migrate)
    sub.add_parser("url", help="print the DATABASE_URL in use").set_defaults(func=_cmd_url)
    r = sub.add_parser("refresh", help="bring the rollups up to date")
    r.add_argument("--full", action="store_true", help="rebuild every rollup")
    r.add_argument("--since", type=date.fromisoformat, help="rebuild every day from this date (YYYY-MM-DD)")
    r.set_defaults(func=_cmd_refresh)
    s = sub.add_parser("seed", help="generate realistic demo data (deterministic per seed)")
    s.add_argument("--orders", type=int, default=None,
                   help="order lines to generate (default DEMO_ORDERS, 1,000,000)")
    s.add_argument("--seed", type=int, default=42, help="random seed: same seed, orders and end, same data")
    s.add_argument("--end", type=date.fromisoformat, default=None,
                   help="last day of data, YYYY-MM-DD (default today in APP_TIMEZONE); three years up to it")
    s.add_argument("--if-empty", action="store_true", help="do nothing when mart.orders has rows")
    s.add_argument("--replace", action="store_true", help="empty the mart tables first and seed again")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_seed)
    ld = sub.add_parser("load", help="validate and import a CSV file; all or nothing",
                        description="Validate a CSV file (header, types, enums, keys, dates) and import it in "
                                    "one transaction; nothing is written when any row is bad. Timestamps without "
                                    "an offset are read in APP_TIMEZONE.")
    ld.add_argument("table")
    ld.add_argument("file")
    ld.add_argument("--mode", choices=["append", "replace"], default="append")
    ld.set_defaults(func=_cmd_load)
    cu = sub.add_parser("create-user", help="create a login (prompts for the password)")
    cu.add_argument("username")
    cu.add_argument("--role", required=True, choices=["admin", "analyst", "viewer", VENDOR])
    cu.add_argument("--vendor", type=int, action="append", metavar="ID",
                    help="with --role vendor: a vendor id (mart.vendors) the user sees; repeat for several")
    cu.add_argument("--name", default="", help="display name")
    cu.add_argument("--email", default="")
    cu.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    cu.set_defaults(func=_cmd_create_user)
    sub.add_parser("demo-users", help="on a database without users, create a demo admin, analyst and two "
                                      "vendor users and print their passwords once").set_defaults(func=_cmd_demo_users)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)

    try:
        return args.func(args)
    except (SettingsError, DatabaseStartError, MigrationError) as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 2
    except sa.exc.OperationalError as ex:
        print(f"error: cannot reach PostgreSQL: {str(ex.orig).strip()}\n"
              "Check DATABASE_URL (or unset it to use the embedded server).", file=sys.stderr)
        return 2
