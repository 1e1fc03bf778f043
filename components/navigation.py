"""The page registry: which file serves which URL, for which roles, and the role-aware menu."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from components.auth import render_not_permitted
from data.auth import ROLES, User

EVERYONE = frozenset(ROLES)
ANALYSTS = frozenset({"analyst", "admin"})
ADMINS = frozenset({"admin"})


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    url_path: str
    roles: frozenset
    section: str
    default: bool = False


# DESIGN.md's role table: dashboards for everyone, SQL/own schedules for analysts, admin for admins.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/overview.py", "Overview", ":material/monitoring:", "overview", EVERYONE, "Analysis", default=True),
    PageSpec("views/sales.py", "Sales", ":material/trending_up:", "sales", EVERYONE, "Analysis"),
    PageSpec("views/vendors.py", "Vendors", ":material/storefront:", "vendors", EVERYONE, "Analysis"),
    PageSpec("views/products.py", "Products", ":material/inventory_2:", "products", EVERYONE, "Analysis"),
    PageSpec("views/customers.py", "Customers", ":material/groups:", "customers", EVERYONE, "Analysis"),
    PageSpec("views/forecasting.py", "Forecasting", ":material/query_stats:", "forecasting", EVERYONE, "Analysis"),
    PageSpec("views/dashboards.py", "Dashboards", ":material/dashboard:", "dashboards", EVERYONE, "Self-service"),
    PageSpec("views/sql.py", "SQL", ":material/terminal:", "sql", ANALYSTS, "Self-service"),
    PageSpec("views/reports.py", "Reports", ":material/outgoing_mail:", "reports", EVERYONE, "Self-service"),
    PageSpec("views/alerts.py", "Alerts", ":material/notifications:", "alerts", ANALYSTS, "Self-service"),
    PageSpec("views/account.py", "My account", ":material/person:", "account", EVERYONE, "Account"),
    PageSpec("views/admin.py", "Admin", ":material/admin_panel_settings:", "admin", ADMINS, "Administration"),
)


def _forbidden(spec: PageSpec):
    def page() -> None:
        st.title(spec.title)
        render_not_permitted(key=f"forbidden_{spec.url_path}")
    page.__name__ = f"forbidden_{spec.url_path}"
    return page


def _nothing() -> None:
    """Stands for every page while logged out: the login form is already drawn."""


def build_navigation(user: User | None):
    """Returns st.navigation over every page (forbidden ones draw "not permitted") and draws the menu.

    Logged out, every URL is registered too (drawing nothing under the login form), so a deep
    link keeps its address and opens its page once the login succeeds.
    """
    if user is None:
        return st.navigation([st.Page(_nothing, title=spec.title, url_path=spec.url_path, default=spec.default)
                              for spec in PAGES], position="hidden")
    pages, menu = [], {}
    for spec in PAGES:
        if user.role in spec.roles:
            page = st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=spec.default)
            menu.setdefault(spec.section, []).append(page)
        else:
            # Registered under the same URL so a deep link answers "not permitted" instead of
            # falling back to another page; never listed in the menu.
            page = st.Page(_forbidden(spec), title=spec.title, icon=":material/lock:", url_path=spec.url_path, default=spec.default)
        pages.append(page)
    nav = st.navigation(pages, position="hidden")
    with st.sidebar:
        for section, entries in menu.items():
            st.caption(section)
            for page in entries:
                st.page_link(page)
    return nav
