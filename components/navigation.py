"""The page registry: which file serves which URL, for which roles, and the role-aware menu."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from components.auth import render_not_permitted
from data.auth import ROLES, STAFF_ROLES, VENDOR, User

EVERYONE = frozenset(ROLES)
STAFF = frozenset(STAFF_ROLES)
ANALYSTS = frozenset({"analyst", "admin"})
ADMINS = frozenset({"admin"})
VENDORS = frozenset({VENDOR})


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    url_path: str
    roles: frozenset
    section: str
    default: bool = False


# DESIGN.md's role table: dashboards for the staff, SQL/own schedules for analysts, admin for admins;
# a vendor user gets the pages of their own business, some shared with the staff and limited to their
# vendors by components.auth.require_scope (the others answer "not permitted").
PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/overview.py", "Overview", ":material/monitoring:", "overview", STAFF, "Analysis", default=True),
    PageSpec("views/portal.py", "Your business", ":material/storefront:", "business", VENDORS, "Analysis",
             default=True),
    PageSpec("views/sales.py", "Sales", ":material/trending_up:", "sales", STAFF | VENDORS, "Analysis"),
    PageSpec("views/vendors.py", "Vendors", ":material/storefront:", "vendors", STAFF, "Analysis"),
    PageSpec("views/products.py", "Products", ":material/inventory_2:", "products", STAFF | VENDORS, "Analysis"),
    PageSpec("views/customers.py", "Customers", ":material/groups:", "customers", STAFF | VENDORS, "Analysis"),
    PageSpec("views/forecasting.py", "Forecasting", ":material/query_stats:", "forecasting", STAFF | VENDORS,
             "Analysis"),
    PageSpec("views/dashboards.py", "Dashboards", ":material/dashboard:", "dashboards", STAFF | VENDORS,
             "Self-service"),
    PageSpec("views/sql.py", "SQL", ":material/terminal:", "sql", ANALYSTS | VENDORS, "Self-service"),
    PageSpec("views/reports.py", "Reports", ":material/outgoing_mail:", "reports", STAFF | VENDORS, "Self-service"),
    PageSpec("views/alerts.py", "Alerts", ":material/notifications:", "alerts", ANALYSTS | VENDORS, "Self-service"),
    PageSpec("views/account.py", "My account", ":material/person:", "account", EVERYONE, "Account"),
    PageSpec("views/admin.py", "Admin", ":material/admin_panel_settings:", "admin", ADMINS, "Administration"),
)


def _forbidden(spec: PageSpec):
    def page() -> None:
        st.title(spec.title)
        render_not_permitted(key=f"forbidden_{spec.url_path}")
    page.__name__ = f"forbidden_{spec.url_path}"
    return page


def _home(home_page, spec: PageSpec):
    def page() -> None:
        st.switch_page(home_page)
    page.__name__ = f"home_instead_of_{spec.url_path}"
    return page


def _nothing() -> None:
    """Stands for every page while logged out: the login form is already drawn."""


# The default page's own URL path. Streamlit serves the default page at the app's root and answers
# its url_path with "Page not found", so the home page is registered at its own path (/overview),
# which the menu links to, and the root (registered under this name) switches to it.
ROOT_URL_PATH = "home"


def build_navigation(user: User | None):
    """Returns st.navigation over every page (forbidden ones draw "not permitted") and draws the menu.

    Logged out, every URL is registered too (drawing nothing under the login form), so a deep
    link keeps its address and opens its page once the login succeeds. The root serves the user's
    home page, which also answers at its own path.
    """
    if user is None:
        first = next(spec for spec in PAGES if spec.default)
        root = st.Page(_nothing, title=first.title, url_path=ROOT_URL_PATH, default=True)
        return st.navigation([root, *(st.Page(_nothing, title=spec.title, url_path=spec.url_path) for spec in PAGES)],
                             position="hidden")
    # The home page: the first default page the user may open.
    home = next(spec for spec in PAGES if spec.default and user.role in spec.roles)
    home_page = st.Page(home.path, title=home.title, icon=home.icon, url_path=home.url_path)
    # The root sends the user on to their home page's own address, where the menu shows where they are.
    root = st.Page(_home(home_page, home), title=home.title, icon=home.icon, url_path=ROOT_URL_PATH, default=True)
    pages, menu = [root], {}
    for spec in PAGES:
        if spec is home:
            page = home_page
        elif user.role in spec.roles:
            page = st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path)
        elif spec.default:
            # The home page of other roles, where a login at the site's root lands (the page
            # logged-out visitors are on): this user goes to their own home instead.
            page = st.Page(_home(home_page, spec), title=spec.title, icon=":material/lock:", url_path=spec.url_path)
        else:
            # Registered under the same URL so a deep link answers "not permitted" instead of
            # falling back to another page; never listed in the menu.
            page = st.Page(_forbidden(spec), title=spec.title, icon=":material/lock:", url_path=spec.url_path)
        if user.role in spec.roles:
            menu.setdefault(spec.section, []).append(page)
        pages.append(page)
    nav = st.navigation(pages, position="hidden")
    with st.sidebar:
        for section, entries in menu.items():
            st.caption(section)
            for page in entries:
                st.page_link(page)
    return nav
