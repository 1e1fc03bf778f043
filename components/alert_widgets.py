"""Alerts page widgets: the rule list with state and severity badges, a rule's instances, history
and notifications, the create/edit form with its preview on the metric chart."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import alerts as A
from analytics.metrics import METRICS, format_value, get_metric
from analytics.vendor_portal import VENDOR_METRICS
from components import loaders
from components.loaders import alerts as L
from components.loaders.portal import load_own_vendor_names
from components.loaders.reports import load_vendor_recipients
from components.report_widgets import filter_fields, local_times
from components.tables import table_height
from components.text import plain
from components.theme import COMPARE, HOVER_FORMAT, PALETTE, TICK_FORMAT, TICK_PREFIX
from data.auth import User
from data.errors import DataError
from data.settings import load_settings
from reports import alerts as R

STATE_BADGES = {"firing": "● Firing", "pending": "● Pending", "error": "● Error", "no_data": "● No data",
                "resolved": "● Resolved", "ok": "● OK", "new": "● Not evaluated yet"}
SEVERITY_BADGES = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"}
# (text, background) of each badge in tables; the colour names of st.markdown's :color-badge[] elsewhere.
STATE_COLOURS = {"firing": ("#b91c1c", "#fee2e2", "red"), "pending": ("#c2410c", "#ffedd5", "orange"),
                 "error": ("#7f1d1d", "#fecaca", "red"), "no_data": ("#475569", "#f1f5f9", "gray"),
                 "resolved": ("#15803d", "#dcfce7", "green"), "ok": ("#15803d", "#dcfce7", "green"),
                 "new": ("#1d4ed8", "#dbeafe", "blue")}
SEVERITY_COLOURS = {"critical": ("#ffffff", "#b91c1c", "red"), "high": ("#ffffff", "#ea580c", "orange"),
                    "medium": ("#422006", "#fde68a", "orange"), "low": ("#ffffff", "#2563eb", "blue")}
_BY_LABEL = {**{v: STATE_COLOURS[k] for k, v in STATE_BADGES.items()},
             **{v: SEVERITY_COLOURS[k] for k, v in SEVERITY_BADGES.items()}}


def badge_styles(table: pd.DataFrame, columns: list[str]):
    """The table with its badge columns coloured (a pandas Styler, which st.dataframe draws)."""
    def colour(label) -> str:
        text, back, _ = _BY_LABEL.get(str(label).split(" · ")[0], ("", "", ""))
        return f"color: {text}; background-color: {back}; font-weight: 600" if text else ""
    return table.style.map(colour, subset=[c for c in columns if c in table.columns])


MUTES = {"1 hour": timedelta(hours=1), "4 hours": timedelta(hours=4), "1 day": timedelta(days=1),
         "1 week": timedelta(days=7)}


def _is_rate(metric: str | None) -> bool:
    return bool(metric) and get_metric(metric).is_rate


def render_summary(rows: pd.DataFrame, *, key: str) -> None:
    """Draws counts of firing, pending and failing rules."""
    c = st.container(key=key).columns(4)
    c[0].metric("Firing", int((rows["state"] == "firing").sum()) if len(rows) else 0,
                help="Rules with at least one instance firing")
    c[1].metric("Pending", int((rows["state"] == "pending").sum()) if len(rows) else 0,
                help="Breaching, waiting for the rule's number of evaluations in a row")
    c[2].metric("No data or error", int(rows["state"].isin(["no_data", "error"]).sum()) if len(rows) else 0)
    c[3].metric("Rules", len(rows), help="Paused ones included")


def render_rule_list(user: User, rows: pd.DataFrame, *, key: str) -> pd.DataFrame:
    """Draws the filters and the rules table; returns the rows shown."""
    c = st.columns([2, 2, 2, 3])
    states = c[0].multiselect("State", list(STATE_BADGES), key=f"{key}_states", format_func=STATE_BADGES.get)
    severities = c[1].multiselect("Severity", list(R.SEVERITIES), key=f"{key}_sev", format_func=SEVERITY_BADGES.get)
    owners = c[2].multiselect("Owner", sorted(rows["owner"].unique()), key=f"{key}_owner") \
        if user.role == "admin" else []
    search = c[3].text_input("Search names", key=f"{key}_search", placeholder="part of a rule's name")
    shown = rows
    if states:
        shown = shown[shown["state"].isin(states)]
    if severities:
        shown = shown[shown["severity"].isin(severities)]
    if owners:
        shown = shown[shown["owner"].isin(owners)]
    if search.strip():
        shown = shown[shown["name"].str.contains(search.strip(), case=False, regex=False)]
    if shown.empty:
        st.info("No rule matches these filters." if len(rows) else "No alert rules yet: create one below.",
                icon=":material/notifications_off:")
        return shown
    now = pd.Timestamp.now(tz="UTC")
    muted = pd.to_datetime(shown["muted_until"], utc=True)
    records = shown.to_dict("records")
    names = L.load_vendor_names(tuple(R.filtered_vendor_ids(records)))
    table = pd.DataFrame({
        "State": shown["state"].map(STATE_BADGES) + [
            f" · {int(f)} values" if fo and f else "" for fo, f in zip(shown["fan_out"], shown["firing"])],
        "Severity": shown["severity"].map(SEVERITY_BADGES),
        "Name": shown["name"],
        "Condition": [R.describe_rule(r, names) for r in records],
        "Every": shown["interval_minutes"].map(lambda m: f"{m} min" if m < 60 else f"{m / 60:g} h"),
        "Channels": [", ".join(list(r or []) + ([w] if w else [])) for r, w in zip(shown["recipients"],
                                                                                    shown["webhook_url"])],
        "Last evaluated": local_times(shown["last_evaluated_at"]),
        "Muted until": [local_times(pd.Series([m])).iloc[0] if m is not pd.NaT and m > now else "" for m in muted],
        "Paused": shown["paused"],
        "Owner": shown["owner"],
    })
    st.dataframe(badge_styles(table, ["State", "Severity"]), hide_index=True, width="stretch", key=f"{key}_table",
                 height=table_height(len(table)),
                 column_config={"Condition": st.column_config.TextColumn(width="large")})
    return shown


def render_rule_detail(user: User, rule: dict, *, key: str) -> None:
    """Actions on one rule and its instances, events and notifications."""
    is_admin = user.role == "admin"
    rid = int(rule["rule_id"])
    state = rule.get("state", "new")
    st.markdown(f"#### {plain(rule['name'])}")
    st.markdown(f":{SEVERITY_COLOURS[rule['severity']][2]}-badge[{SEVERITY_BADGES[rule['severity']]}] "
                f":{STATE_COLOURS[state][2]}-badge[{STATE_BADGES[state]}]"
                + (" :gray-badge[Paused]" if rule["paused"] else ""))
    names = L.load_vendor_names(tuple(R.filtered_vendor_ids([rule])))
    st.caption(f"{plain(R.describe_rule(rule, names))} · every {rule['interval_minutes']} min · "
               f"{'for ' + str(rule['for_evaluations']) + ' evaluations in a row · ' if rule['for_evaluations'] > 1 else ''}"
               f"{'repeats every ' + str(int(rule['repeat_minutes'])) + ' min while firing · ' if rule['repeat_minutes'] == rule['repeat_minutes'] and rule['repeat_minutes'] else ''}"
               f"owner {plain(rule['owner'])}")
    if rule.get("last_error"):
        st.error(f"The last evaluation failed: {plain(rule['last_error'])}", icon=":material/error:")
    c = st.columns([1, 1.2, 1.4, 1, 2.2, 1.1])
    if c[0].button("Edit", key=f"{key}_edit", icon=":material/edit:"):
        st.session_state[f"{key}_editing"] = rid
        st.rerun()
    paused = bool(rule["paused"])
    if c[1].button("Resume" if paused else "Pause", key=f"{key}_pause",
                   icon=":material/play_circle:" if paused else ":material/pause_circle:"):
        L.set_paused(user.username, rid, not paused, is_admin=is_admin)
        st.rerun()
    muted_until = rule.get("muted_until")
    is_muted = muted_until is not None and muted_until == muted_until and \
        pd.Timestamp(muted_until) > pd.Timestamp.now(tz="UTC")
    if is_muted:
        if c[2].button("Unmute", key=f"{key}_unmute", icon=":material/notifications_active:"):
            L.set_muted(user.username, rid, None, is_admin=is_admin)
            st.rerun()
    else:
        span = c[2].selectbox("Mute for", list(MUTES), key=f"{key}_mute_for", label_visibility="collapsed")
        if c[3].button("Mute", key=f"{key}_mute", icon=":material/notifications_off:"):
            L.set_muted(user.username, rid, datetime.now(load_settings().tz) + MUTES[span], is_admin=is_admin)
            st.rerun()
    if c[4].button("Send test notification", key=f"{key}_test", icon=":material/send:"):
        try:
            with st.spinner("Sending to each channel…"):
                results = L.send_test(user.username, rid, is_admin=is_admin)
        except DataError as ex:
            st.error(f"The test was not sent: {plain(ex)}", icon=":material/error:")
            results = []
        for r in results:
            if r["outcome"] == "sent":
                st.success(f"Test sent by {r['channel']} to {plain(r['target'])}.", icon=":material/check:")
            elif r["outcome"] == "queued":
                st.info(f"Test to {plain(r['target'])} queued: the scheduler sends it.", icon=":material/schedule_send:")
            else:
                st.error(f"Test to {plain(r['target'])} failed: {plain(r['error'])}. It will be retried like any notification.",
                         icon=":material/error:")
    if c[5].button("Delete", key=f"{key}_delete", icon=":material/delete:"):
        L.delete_rule(user.username, rid, is_admin=is_admin)
        st.rerun()
    if is_muted:
        st.caption(f"Muted until {local_times(pd.Series([muted_until])).iloc[0]}: transitions are recorded, nothing is sent.")
    instances, events, notes = L.load_rule_activity(rid)
    value_of = (lambda v: format_value(rule["metric"], v, compact=False)) if rule["source"] == "metric" \
        else (lambda v: f"{v:,.6g}")
    fmt = lambda v: "" if v is None or v != v else value_of(v)  # noqa: E731
    names = _fan_names(rule, list(instances["fan_value"]) + list(events["fan_value"]))
    tabs = st.tabs([f"Instances ({len(instances)})", f"History ({len(events)})", f"Notifications ({len(notes)})"])
    with tabs[0]:
        if instances.empty:
            st.caption("Every instance is OK (only instances that have left OK are listed).")
        else:
            st.dataframe(badge_styles(pd.DataFrame({
                "Value of": instances["fan_value"].map(names), "State": instances["state"].map(STATE_BADGES),
                "Value": instances["value"].map(fmt), "Since": local_times(instances["since"]),
                "Last notified": local_times(instances["last_notified_at"])}), ["State"]),
                hide_index=True, width="stretch", key=f"{key}_instances", height=table_height(len(instances)))
    with tabs[1]:
        if events.empty:
            st.caption("No transitions yet.")
        else:
            st.dataframe(badge_styles(pd.DataFrame({
                "At": local_times(events["at"]), "Value of": events["fan_value"].map(names),
                "From": events["from_state"].map(STATE_BADGES), "To": events["to_state"].map(STATE_BADGES),
                "Value": events["value"].map(fmt), "Compared with": events["baseline"].map(fmt),
                "Notified": [("muted" if m else (n or "")) for n, m in zip(events["notify"], events["muted"])],
                "Note": events["message"]}), ["From", "To"]),
                hide_index=True, width="stretch", key=f"{key}_events", height=table_height(len(events)))
    with tabs[2]:
        if notes.empty:
            st.caption("No notifications yet.")
        else:
            st.dataframe(pd.DataFrame({
                "Queued": local_times(notes["created_at"]), "Channel": notes["channel"], "To": notes["target"],
                "Subject": notes["subject"], "Status": notes["status"], "Attempts": notes["attempts"],
                "Sent": local_times(notes["sent_at"]), "Last error": notes["last_error"]}),
                hide_index=True, width="stretch", key=f"{key}_notes", height=table_height(len(notes)))


def _fan_names(rule: dict, values: list[str]) -> dict:
    out = {v: v for v in values}
    out[""] = "the rule"
    out[R.ERROR_INSTANCE] = "the evaluation"
    if rule.get("fan_out") == "vendor_id":
        names = dict(loaders.load_dimension_values().get("vendor_id", []))
        out.update({v: f"{names.get(int(v), 'vendor')} ({v})" for v in values if v.isdigit()})
    return out


# --- the form ----------------------------------------------------------------------------------------

def rule_form(user: User, *, key: str, editing: dict | None = None) -> dict | None:
    """Draws the rule's fields; returns them for check_rule (None while they cannot be read)."""
    e = editing or {}
    st.text_input("Name", value=e.get("name", ""), key=f"{key}_name", placeholder="GMV dropped")
    fields: dict = {"name": st.session_state[f"{key}_name"]}
    sources = ["metric", "query"]
    # A vendor user's rule watches one of their own metrics over their own vendors (reports.alerts).
    source = "metric" if user.is_vendor else st.radio(
        "Watch", sources, horizontal=True, key=f"{key}_source", index=sources.index(e.get("source", "metric")),
        format_func={"metric": "A metric", "query": "A saved query's number"}.get)
    fields["source"] = source
    if source == "metric":
        metrics = list(VENDOR_METRICS if user.is_vendor else METRICS)
        c = st.columns(3)
        metric = c[0].selectbox("Metric", metrics, key=f"{key}_metric", format_func=lambda m: METRICS[m].label,
                                index=metrics.index(e["metric"]) if e.get("metric") in metrics else 0,
                                help="The glossary's definitions, the same as on every page")
        windows = list(A.WINDOWS)
        window = c[1].selectbox("Window", windows, key=f"{key}_window", format_func=A.WINDOWS.get,
                                index=windows.index(e["window"]) if e.get("window") in windows else 1,
                                help="Last hour and 24 hours end at the evaluation; the others are whole days, "
                                     "or today, this week and this month so far")
        if user.is_vendor:
            names = load_own_vendor_names(user.vendor_ids)
            ids = list(user.vendor_ids)
            had = (e.get("filters") or {}).get("vendor_id") or ids[:1]
            vendor = c[2].selectbox("Vendor", ids, key=f"{key}_own_vendor", format_func=lambda v: names.get(v, str(v)),
                                    index=ids.index(had[0]) if had[0] in ids else 0, disabled=len(ids) == 1)
            fields.update(metric=metric, window=window, fan_out="", filters={"vendor_id": [vendor]})
        else:
            fans = ["", *A.FAN_OUTS]
            fan = c[2].selectbox("For each", fans, key=f"{key}_fan", index=fans.index(e.get("fan_out") or ""),
                                 format_func=lambda f: "— the whole selection —" if not f else A.FAN_OUTS[f],
                                 help="One instance per value, each with its own state")
            fields.update(metric=metric, window=window, fan_out=fan, filters=filter_fields(key, e.get("filters") or {}))
    else:
        queries = L.load_queries(e.get("owner") or user.username)   # an admin editing a rule sees its owner's
        if queries.empty:
            st.info("Save a query on the SQL page first: one number, or a label and a number per row.",
                    icon=":material/bookmark:")
            return None
        names = dict(zip(queries["query_id"].astype(int), queries["name"] + " · " + queries["owner"]))
        ids = list(names)
        fields["query_id"] = st.selectbox("Saved query", ids, key=f"{key}_query", format_func=names.get,
                                          index=ids.index(e["query_id"]) if e.get("query_id") in ids else 0,
                                          help="One number; or rows of a label and a number, one instance per label")
        raw = st.text_input("Query parameters (JSON)", value=json.dumps(e.get("query_params") or {}),
                            key=f"{key}_qparams")
        try:
            fields["query_params"] = json.loads(raw or "{}")
        except ValueError:
            st.error("Query parameters: write a JSON object such as {\"days\": 7}.", icon=":material/error:")
            return None
        metric = None
    conditions = list(A.CONDITIONS) if source == "metric" else ["above", "below"]
    if user.is_vendor:   # forecast bands come from the marketplace's stored forecasts
        conditions.remove("outside_forecast")
    c = st.columns(3)
    condition = c[0].selectbox("Condition", conditions, key=f"{key}_condition", format_func=A.CONDITIONS.get,
                               index=conditions.index(e["condition"]) if e.get("condition") in conditions else 1)
    fields["condition"] = condition
    rate = _is_rate(metric)
    if condition in A.CHANGES:
        bases = list(A.BASELINES)
        fields["baseline"] = c[1].selectbox("Compared with", bases, key=f"{key}_baseline", format_func=A.BASELINES.get,
                                            index=bases.index(e["baseline"]) if e.get("baseline") in bases else 0)
        fields["threshold"] = c[2].number_input("By more than (%)", min_value=0.0, value=float(e.get("threshold") or 20),
                                                step=5.0, key=f"{key}_pct")
    elif condition != "outside_forecast":
        unit = " (%)" if rate else (" (€)" if metric and get_metric(metric).fmt == "money" else "")
        start = e.get("threshold")
        start = float(start) * (100 if rate else 1) if start is not None and start == start else 0.0
        value = c[1].number_input(f"Threshold{unit}", value=start, key=f"{key}_threshold_{'rate' if rate else 'value'}",
                                  format="%.2f" if (rate or unit) else "%g")
        fields["threshold"] = value / 100 if rate else value
    else:
        c[1].caption("Fires when yesterday's value leaves the 80 % band of the latest stored forecast "
                     "(the forecasting page, or the nightly forecasts).")
    c = st.columns(4)
    fields["for_evaluations"] = c[0].number_input("For (evaluations in a row)", 1, 1000,
                                                  value=int(e.get("for_evaluations") or 1), key=f"{key}_for")
    fields["interval_minutes"] = c[1].number_input("Every (minutes)", 1, 10080, value=int(e.get("interval_minutes") or 5),
                                                   key=f"{key}_every")
    sev = list(R.SEVERITIES)
    fields["severity"] = c[2].selectbox("Severity", sev, key=f"{key}_sev", format_func=SEVERITY_BADGES.get,
                                        index=sev.index(e.get("severity") or "medium"))
    rep = e.get("repeat_minutes")
    rep = int(rep) if rep is not None and rep == rep else 0
    fields["repeat_minutes"] = c[3].number_input("Repeat while firing (minutes, 0 = never)", 0, 43200, value=rep,
                                                 key=f"{key}_repeat")
    c = st.columns(2)
    # A vendor user's new rule notifies themselves unless they say otherwise.
    start = e.get("recipients") or ([user.email] if user.is_vendor and user.email and not e else [])
    fields["recipients"] = c[0].text_area("Email recipients (commas or one per line)", key=f"{key}_recipients",
                                          height=80, value=", ".join(start))
    if user.is_vendor:
        allowed = load_vendor_recipients(user.vendor_ids)
        c[1].caption("Your alerts go by email to your vendors' users: "
                     + (", ".join(allowed) if allowed else "none has an email yet (the marketplace's admin sets them)")
                     + ".")
        fields["webhook_url"] = ""
    else:
        fields["webhook_url"] = c[1].text_input("Webhook URL (optional, Slack-compatible JSON)", key=f"{key}_webhook",
                                                value=e.get("webhook_url") or "")
    fields["notify_on_resolve"] = c[1].checkbox("Notify when resolved", value=bool(e.get("notify_on_resolve", True)),
                                                key=f"{key}_resolve")
    if user.role == "admin" and fields.get("fan_out") == "vendor_id":
        fields["to_vendors"] = c[1].checkbox(
            "Also notify every vendor's own users", value=bool(e.get("to_vendors")), key=f"{key}_to_vendors",
            help="The rule then watches each vendor that has vendor users, its value computed on that vendor's "
                 "own database role; the vendor's users (their email on the admin page) get the notifications "
                 "about their own vendor only, the recipients above every vendor's")
    return fields


def render_form(user: User, *, key: str, editing: dict | None = None) -> int | None:
    """The rule form with Preview and Save; returns the rule's id once saved."""
    st.markdown(f"**Edit “{plain(editing['name'])}”**" if editing else "**New alert rule**")
    fields = rule_form(user, key=key, editing=editing)
    c = st.columns([1, 1, 4])
    preview = c[0].button("Preview", key=f"{key}_preview", icon=":material/insights:",
                          disabled=fields is None or fields.get("source") != "metric",
                          help="Replays the rule over the last 30 days (metric rules)")
    save = c[1].button("Save rule", type="primary", key=f"{key}_save", icon=":material/save:", disabled=fields is None)
    if fields is None:
        return None
    if save:
        try:
            return L.save_rule(user.username, rule_id=(editing or {}).get("rule_id"), is_admin=user.role == "admin",
                               **fields)
        except R.AlertError as ex:
            st.error(f"Not saved: {ex}.", icon=":material/error:")
    if preview:
        try:
            bar = st.progress(0.0, text="Replaying the last 30 days…")
            p = L.load_preview(fields, lambda x: bar.progress(x, text="Replaying the last 30 days…"),
                               user.vendor_ids if user.is_vendor else ())
            bar.empty()
            render_preview(fields, p, key=f"{key}_chart")
        except R.AlertError as ex:
            st.error(f"No preview: {ex}.", icon=":material/error:")
    return None


def render_preview(fields: dict, p: A.Preview, *, key: str) -> None:
    df = p.frame
    every = "day" if p.step >= timedelta(days=1) else (
        f"{p.step.total_seconds() / 3600:g} hours" if p.step >= timedelta(hours=1) else f"{p.step}")
    instances = df.loc[df["notify"] == "firing", "fan_value"].nunique()
    where = f" across {instances} values" if fields.get("fan_out") and instances else ""
    st.markdown(f"Over the last 30 days this rule **would have fired {p.fired} time{'s' if p.fired != 1 else ''}**"
                f"{where} (replayed every {every}, {p.points} evaluations).")
    if df.empty:
        return
    metric = fields["metric"]
    fmt = get_metric(metric).fmt
    fans = list(df.loc[df["outcome"] == "breach", "fan_value"].value_counts().index[:6]) or \
        list(df["fan_value"].drop_duplicates()[:1])
    names = _fan_names(fields, fans)
    fig = go.Figure()
    for i, fan in enumerate(fans):
        part = df[df["fan_value"] == fan]
        label = get_metric(metric).label + ("" if not fan else f" · {names.get(fan, fan)}")
        colour = PALETTE[i % len(PALETTE)]
        if part["upper"].notna().any():
            fig.add_scatter(x=part["at"], y=part["upper"], line=dict(width=0), showlegend=False, hoverinfo="skip")
            fig.add_scatter(x=part["at"], y=part["lower"], line=dict(width=0), fill="tonexty",
                            fillcolor="rgba(37,99,235,0.12)", name="Forecast band", hoverinfo="skip")
        if part["baseline"].notna().any() and fields.get("condition") in A.CHANGES:
            fig.add_scatter(x=part["at"], y=part["baseline"], name=f"{label} · {A.BASELINES[fields['baseline']]}",
                            line=dict(color=COMPARE, dash="dot", width=1.5),
                            hovertemplate=f"%{{y:{HOVER_FORMAT[fmt]}}}")
        fig.add_scatter(x=part["at"], y=part["value"], name=label, line=dict(color=colour, width=2.5),
                        hovertemplate=f"%{{y:{HOVER_FORMAT[fmt]}}}")
        hits = part[part["outcome"] == "breach"]
        fig.add_scatter(x=hits["at"], y=hits["value"], mode="markers", name="breach" if i == 0 else None,
                        showlegend=i == 0, marker=dict(color="#ef4444", size=8, symbol="circle"),
                        hovertemplate=f"breach %{{y:{HOVER_FORMAT[fmt]}}}")
        fires = part[part["notify"] == "firing"]
        fig.add_scatter(x=fires["at"], y=fires["value"], mode="markers", name="would fire" if i == 0 else None,
                        showlegend=i == 0, marker=dict(color="#b91c1c", size=14, symbol="triangle-up"),
                        hovertemplate="fires")
    if fields.get("condition") in ("above", "below") and fields.get("threshold") is not None:
        fig.add_hline(y=fields["threshold"], line=dict(color="#ef4444", dash="dash", width=1.5),
                      annotation_text="threshold", annotation_position="top left")
    fig.update_layout(height=360, yaxis_tickformat=TICK_FORMAT[fmt], yaxis_tickprefix=TICK_PREFIX[fmt])
    st.plotly_chart(fig, key=key, width="stretch")
