"""Reports page widgets: the export request form, the list of my exports with progress and
downloads, and the schedules (list, form, run history)."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from analytics.filters import DIMENSIONS
from analytics.forecast_series import FORECAST_DIMS, FORECAST_METRICS, metric_label
from components import flash, loaders
from components.loaders import reports as L
from components.loaders.portal import load_own_vendor_names
from components.tables import table_height
from components.text import plain
from data.auth import User
from data.settings import load_settings
from reports import exports as X
from reports import schedules as S
from reports.periods import RELATIVE_PERIODS
from reports.templates import FAN_OUT, TEMPLATES, ReportError

FORMAT_LABELS = {"csv": "CSV", "xlsx": "Excel", "pdf": "PDF", "json": "JSON"}
STATUS_ICONS = {"queued": "⏳ queued", "running": "▶ running", "done": "✔ done", "failed": "✖ failed"}
FILTER_DIMS = ("category", "region", "channel", "business_model", "vendor_id")


def local_times(times: pd.Series) -> pd.Series:
    """Times as wall-clock times of APP_TIMEZONE (the page's zone), without the offset; blank where
    there is none."""
    return pd.to_datetime(times, utc=True).dt.tz_convert(load_settings().tz).dt.tz_localize(None)\
        .dt.strftime("%Y-%m-%d %H:%M").fillna("")


def _size(n) -> str:
    if n is None or n != n:
        return ""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def template_fields(user: User, *, key: str, initial: dict | None = None) -> tuple[str, dict, str]:
    """Draws template, format, period, filters (and the saved query or forecast series); returns
    (template, spec, format). initial: a schedule's values when editing one."""
    initial = initial or {}
    spec0 = initial.get("spec") or {}
    allowed = [t for t in TEMPLATES if t != "saved_query" or user.role in ("analyst", "admin")]
    if user.is_vendor:   # their own report only: the others are about the whole marketplace
        allowed = [t for t in TEMPLATES if TEMPLATES[t].vendor_scoped]
    c = st.columns([3, 1, 2])
    template = c[0].selectbox("Report", allowed, key=f"{key}_template", format_func=lambda t: TEMPLATES[t].label,
                              index=allowed.index(initial["template"]) if initial.get("template") in allowed else 0)
    t = TEMPLATES[template]
    fmt = c[1].selectbox("Format", t.formats, key=f"{key}_format_{template}", format_func=FORMAT_LABELS.get,
                         index=t.formats.index(initial["fmt"]) if initial.get("fmt") in t.formats else 0)
    spec: dict = {}
    if t.uses_period:
        periods = list(RELATIVE_PERIODS)
        spec["period"] = c[2].selectbox("Period (resolved when it runs)", periods, key=f"{key}_period",
                                        format_func=RELATIVE_PERIODS.get,
                                        index=periods.index(spec0.get("period", "last_7_days")))
    if t.uses_filters and user.is_vendor:
        names = load_own_vendor_names(user.vendor_ids)
        spec["filters"] = {"vendor_id": [st.selectbox("Vendor", list(user.vendor_ids), key=f"{key}_own_vendor",
                                                      format_func=lambda v: names.get(v, str(v)))]}
    elif t.uses_filters:
        spec["filters"] = filter_fields(key, spec0.get("filters") or {})
    if template == "saved_query":
        queries = L.load_queries(user.username)
        if queries.empty:
            st.info("Save a query on the SQL page first.", icon=":material/bookmark:")
        else:
            names = dict(zip(queries["query_id"].astype(int), queries["name"] + " · " + queries["owner"]))
            ids = list(names)
            spec["query_id"] = st.selectbox("Saved query", ids, key=f"{key}_query", format_func=names.get,
                                            index=ids.index(spec0["query_id"]) if spec0.get("query_id") in ids else 0)
            raw = st.text_input("Query parameters (JSON, as {\"name\": value})", key=f"{key}_qparams",
                                value=json.dumps(spec0.get("query_params") or {}))
            try:
                spec["query_params"] = json.loads(raw or "{}")
                if not isinstance(spec["query_params"], dict):
                    raise ValueError
            except ValueError:
                st.error("Query parameters: write a JSON object such as {\"top\": 10}.", icon=":material/error:")
                spec["query_params"] = None
    if template == "forecast":
        c = st.columns(3)
        spec["metric"] = c[0].selectbox("Metric", FORECAST_METRICS, key=f"{key}_fc_metric", format_func=metric_label)
        spec["dim"] = c[1].selectbox("Series", list(FORECAST_DIMS), key=f"{key}_fc_dim", format_func=FORECAST_DIMS.get)
        if spec["dim"]:
            values = loaders.load_dimension_values().get(spec["dim"], [])
            if spec["dim"] == "vendor_id":
                names = dict(values)
                spec["value"] = str(c[2].selectbox("Vendor", list(names), key=f"{key}_fc_value", format_func=names.get))
            else:
                spec["value"] = c[2].selectbox("Value", values, key=f"{key}_fc_value")
    if not t.uses_filters:
        st.caption({"customer_segments": "From the nightly customer scores (every customer, as of the day before).",
                    "at_risk_customers": "From the nightly customer scores (every customer, as of the day before).",
                    "forecast": "The latest stored forecast of the series (made now if none is stored).",
                    "saved_query": "Streamed from PostgreSQL on the analysts' role: no row limit in CSV, JSON and "
                                   "Excel (new sheets past 1,048,575 rows); PDFs hold the first 5,000 rows."}
                   .get(template, ""))
    return template, spec, fmt


def filter_fields(key: str, initial: dict) -> dict:
    """Draws a multiselect per FILTER_DIMS dimension in one row; returns {dimension: [values]} of
    those with a choice (a report's or an alert rule's filters)."""
    values = loaders.load_dimension_values()
    filters = {}
    for col, dim in zip(st.columns(len(FILTER_DIMS)), FILTER_DIMS):
        options = values.get(dim, [])
        if dim == "vendor_id":
            names = dict(options)
            picked = col.multiselect("Vendor", list(names), key=f"{key}_f_{dim}", format_func=names.get,
                                     default=[v for v in initial.get(dim, []) if v in names])
        else:
            picked = col.multiselect(DIMENSIONS[dim], options, key=f"{key}_f_{dim}",
                                     default=[v for v in initial.get(dim, []) if v in options])
        if picked:
            filters[dim] = list(picked)
    return filters


def render_request(user: User, *, key: str) -> None:
    st.markdown("Exports are made in the background by the scheduler: you can leave the page and come back. "
                f"Files are kept for {load_settings().export_expiry_days} days.")
    template, spec, fmt = template_fields(user, key=key)
    if st.button("Export in the background", type="primary", key=f"{key}_go", icon=":material/cloud_download:",
                 disabled=spec.get("query_params", {}) is None):
        try:
            export_id = L.save_export(user.username, template, spec, fmt)
            # Run the page again: My exports (drawn above this tab) then lists it and follows its progress.
            flash.later(key, f"Export {export_id} queued: it appears under My exports with its progress.")
            st.rerun()
        except ReportError as ex:
            st.error(f"Not queued: {ex}.", icon=":material/error:")
    flash.show(key)


def _exports_body(user: User, key: str, wanted: int | None, live: bool) -> None:
    mine = L.load_exports(None if user.role == "admin" and st.session_state.get(f"{key}_all") else user.username)
    if live and not mine["status"].isin(["queued", "running"]).any():
        st.rerun(scope="app")   # all finished: draw the list once more, without refreshing every 2 s
    if mine.empty:
        st.info("No exports yet: request one on the New export tab, or schedule a report.", icon=":material/inbox:")
        return
    table = pd.DataFrame({
        "Export": mine["export_id"], "Report": mine["title"], "Format": mine["format"].map(FORMAT_LABELS),
        "Status": mine["status"].map(STATUS_ICONS), "Progress": mine["progress"].astype(float),
        "Step": mine["step"], "Rows": mine["rows"], "Size": mine["bytes"].map(_size),
        "Created": local_times(mine["created_at"]), "Expires": local_times(mine["expires_at"]), "Message": mine["message"]})
    if user.role == "admin":
        table.insert(1, "Owner", mine["owner"])
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_table", height=table_height(len(table)),
                 column_config={"Progress": st.column_config.ProgressColumn("Progress", min_value=0, max_value=1,
                                                                             format="percent")})
    done = mine[mine["status"] == "done"]
    if done.empty:
        return
    labels = dict(zip(done["export_id"].astype(int), done["file_name"].fillna("") + " · " + done["owner"]))
    ids = list(labels)
    c = st.columns([4, 1], vertical_alignment="bottom")
    picked = c[0].selectbox("Download", ids, key=f"{key}_pick", format_func=labels.get,
                            index=ids.index(wanted) if wanted in ids else 0)
    found = L.load_export_file(int(picked), user.username, admin=user.role == "admin")
    if found is None:
        c[1].caption("The file is gone (expired or cleaned up).")
        return
    path, name = found
    c[1].download_button("Download", lambda: path.read_bytes(), file_name=name, key=f"{key}_dl_{picked}",
                         mime=X.MIME.get(name.rsplit(".", 1)[-1]), icon=":material/download:", on_click="ignore")


_live_exports = st.fragment(run_every=2)(_exports_body)     # while something is queued or running
_still_exports = st.fragment(_exports_body)


def render_exports(user: User, *, key: str) -> None:
    wanted = st.query_params.get("export")
    if user.role == "admin":
        st.toggle("Everyone's exports", key=f"{key}_all")
    busy = L.load_exports_in_flight(user.username,
                                    everyone=user.role == "admin" and bool(st.session_state.get(f"{key}_all")))
    draw = _live_exports if busy else _still_exports
    draw(user, key, int(wanted) if wanted and str(wanted).isdigit() else None, bool(busy))


# --- schedules ---------------------------------------------------------------------------------------

def _cadence_fields(key: str, initial: dict | None) -> tuple[dict, str]:
    initial = initial or {}
    cad0 = initial.get("cadence") or {"kind": "daily", "at": "07:00"}
    kinds = list(S.CADENCE_KINDS)
    c = st.columns([1, 1, 1, 2])
    kind = c[0].selectbox("Cadence", kinds, key=f"{key}_kind", index=kinds.index(cad0["kind"]),
                          format_func=str.capitalize)
    cadence: dict = {"kind": kind}
    if kind == "cron":
        cadence["cron"] = c[1].text_input("Cron expression", value=cad0.get("cron", "0 7 * * 1-5"), key=f"{key}_cron",
                                          help="minute hour day-of-month month day-of-week, e.g. 0 7 * * 1-5")
    else:
        cadence["at"] = c[1].text_input("At (HH:MM)", value=cad0.get("at", "07:00"), key=f"{key}_at")
        if kind == "weekly":
            cadence["weekday"] = c[2].selectbox("On", range(7), format_func=lambda d: S.WEEKDAYS[d],
                                                key=f"{key}_weekday", index=cad0.get("weekday", 0))
        if kind == "monthly":
            cadence["day"] = c[2].number_input("Day of month", 1, 28, value=cad0.get("day", 1), key=f"{key}_day")
    tz = c[3].text_input("Time zone", value=initial.get("tz") or load_settings().timezone, key=f"{key}_tz")
    return cadence, tz


def render_schedule_form(user: User, *, key: str, editing: dict | None = None,
                         list_key: str | None = None) -> None:
    """The schedule's fields and Save; with list_key (the schedule list's key), a saved schedule
    leaves edit mode and reruns the page, so the list above shows it with the confirmation."""
    title = f"Edit “{plain(editing['name'])}”" if editing else "New schedule"
    st.markdown(f"**{title}**")
    name = st.text_input("Name", value=(editing or {}).get("name", ""), key=f"{key}_name")
    template, spec, fmt = template_fields(user, key=f"{key}_t", initial=editing)
    cadence, tz = _cadence_fields(key, editing)
    c = st.columns(2)
    # A vendor user's new schedule goes to themselves unless they say otherwise.
    start = (editing or {}).get("recipients") or ([user.email] if user.is_vendor and user.email and not editing else [])
    recipients = c[0].text_area("Email recipients (commas or one per line)", key=f"{key}_recipients", height=80,
                                value=", ".join(start))
    webhook = ""
    if user.is_vendor:   # their own report, by email to their vendors' users only (reports.schedules)
        allowed = L.load_vendor_recipients(user.vendor_ids)
        c[1].caption("Your report goes by email to your vendors' users: "
                     + (", ".join(allowed) if allowed else "none has an email yet (the marketplace's admin sets them)")
                     + ".")
    else:
        webhook = c[1].text_input("Webhook URL (optional, Slack-compatible JSON)", key=f"{key}_webhook",
                                  value=(editing or {}).get("webhook_url", ""),
                                  help="POSTed a JSON body with a `text` field and the report's figures")
    if webhook.startswith("http://"):
        c[1].caption("An https:// address is recommended: the body goes over the network in clear text.")
    fan_out, fan_values = None, None
    if TEMPLATES[template].uses_filters and not user.is_vendor:
        options = [None, *FAN_OUT]
        if user.role == "admin" and TEMPLATES[template].vendor_scoped:
            options.append(S.EVERY_VENDOR)
        current = (editing or {}).get("fan_out")
        fan_out = st.selectbox("Fan out: one report per …", options, key=f"{key}_fan",
                               format_func=lambda v: {None: "no fan-out", S.EVERY_VENDOR: "every vendor (to its own "
                                                      "users)"}.get(v, v),
                               index=options.index(current) if current in options else 0)
        if fan_out == S.EVERY_VENDOR:
            st.caption("One report per vendor with vendor users, made on that vendor's own database role (it can hold "
                       "nothing of another vendor) and mailed to its users' addresses from the admin page. Leave the "
                       "recipients, the webhook and the filters empty.")
        elif fan_out:
            st.caption(f"One line per {fan_out}: the value, a colon, then that report's recipients (the recipients "
                       "above get every one).")
            example = "Books: books@example.com" if fan_out == "category" else "12: vendor-12@example.com"
            raw = st.text_area(f"{fan_out.capitalize()} values and recipients", key=f"{key}_fan_values", height=100,
                               placeholder=example,
                               value="\n".join(f"{v}: {', '.join(r)}" for v, r in ((editing or {}).get("fan_values")
                                                                                    or {}).items()))
            fan_values = {}
            for line in raw.splitlines():
                value, _, who = line.partition(":")
                if value.strip():
                    fan_values[value.strip()] = who
    if st.button("Save schedule", type="primary", key=f"{key}_save", icon=":material/save:"):
        try:
            sid = L.save_schedule(user.username, schedule_id=(editing or {}).get("schedule_id"),
                                  is_admin=user.role == "admin", name=name, template=template, spec=spec, fmt=fmt,
                                  cadence=cadence, tz=tz.strip(), recipients=recipients, webhook_url=webhook,
                                  fan_out=fan_out, fan_values=fan_values)
            said = f"Saved schedule {sid}: {S.describe_cadence(cadence, tz.strip())}."
            if list_key:
                flash.later(list_key, said)
                st.session_state.pop(f"{list_key}_editing", None)
                st.rerun()
            st.success(said, icon=":material/check:")
        except (S.ScheduleError, ReportError) as ex:
            st.error(f"Not saved: {ex}.", icon=":material/error:")


def render_schedules(user: User, *, key: str) -> None:
    is_admin = user.role == "admin"
    flash.show(key)
    rows = L.load_schedules(None if is_admin else user.username)
    if rows.empty:
        st.info("No schedules yet: create one below.", icon=":material/schedule:")
    else:
        table = pd.DataFrame({
            "Name": rows["name"], "Owner": rows["owner"], "Report": rows["template"].map(lambda t: TEMPLATES[t].label),
            "Format": rows["format"].map(FORMAT_LABELS),
            "When": [S.describe_cadence(c, tz) for c, tz in zip(rows["cadence"], rows["timezone"])],
            "Paused": rows["paused"], f"Next run ({load_settings().timezone})": local_times(rows["next_run_at"]),
            "Recipients": [", ".join(r or []) for r in rows["recipients"]],
            "Fan-out": rows["fan_out"].fillna(""), "Last run": local_times(rows["last_slot"]),
            "Last status": rows["last_status"],
            "Last message": rows["last_message"]})
        st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_list", height=table_height(len(table)))
        names = dict(zip(rows["schedule_id"].astype(int), rows["name"] + " · " + rows["owner"]))
        picked = st.selectbox("Schedule", list(names), key=f"{key}_pick", format_func=names.get)
        row = rows.set_index("schedule_id").loc[picked]
        c = st.columns(5)
        if c[0].button("Run now", key=f"{key}_run", icon=":material/play_arrow:"):
            n = L.run_now(user.username, int(picked), is_admin=is_admin)
            st.success(f"{n} run(s) queued: the scheduler makes and sends them within seconds.", icon=":material/check:")
        paused = bool(row["paused"])
        if c[1].button("Resume" if paused else "Pause", key=f"{key}_pause",
                       icon=":material/play_circle:" if paused else ":material/pause_circle:"):
            L.set_paused(user.username, int(picked), not paused, is_admin=is_admin)
            st.rerun()
        if c[2].button("Edit", key=f"{key}_edit", icon=":material/edit:"):
            st.session_state[f"{key}_editing"] = {
                "schedule_id": int(picked), "name": row["name"], "template": row["template"], "spec": row["params"],
                "fmt": row["format"], "cadence": row["cadence"], "tz": row["timezone"],
                "recipients": list(row["recipients"] or []), "webhook_url": row["webhook_url"],
                "fan_out": row["fan_out"] if isinstance(row["fan_out"], str) else None, "fan_values": row["fan_values"]}
        if c[3].button("Delete", key=f"{key}_delete", icon=":material/delete:"):
            L.delete_schedule(user.username, int(picked), is_admin=is_admin)
            st.rerun()
        with st.expander("Run history and deliveries", expanded=False):
            h = L.load_run_history(int(picked))
            if h.empty:
                st.caption("No runs yet.")
            else:
                st.dataframe(pd.DataFrame({
                    "Slot": local_times(h["slot"]), "Value": h["fan_value"], "Run now": h["manual"], "Status": h["status"],
                    "Rows": h["rows"], "Delivered": h["delivered"], "Waiting": h["waiting"],
                    "Failed deliveries": h["failed_deliveries"], "Message": h["message"]}),
                    hide_index=True, width="stretch", key=f"{key}_history", height=table_height(len(h)))
    st.divider()
    editing = st.session_state.get(f"{key}_editing")
    render_schedule_form(user, key=f"{key}_form_{(editing or {}).get('schedule_id', 'new')}", editing=editing,
                         list_key=key)
    if editing and st.button("Cancel editing", key=f"{key}_cancel"):
        st.session_state.pop(f"{key}_editing", None)
        st.rerun()

