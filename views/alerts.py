"""Alerts: rules over glossary metrics or saved queries, evaluated by the scheduler, with their
state, history and notifications; analysts manage their own rules, admins everyone's, and a vendor
user their own rules over their own sales."""
from __future__ import annotations

import streamlit as st

from components import alert_widgets as W
from components import flash
from components.auth import current_user, require_scope
from components.loaders.alerts import load_rule, load_rules

vendor_ids = require_scope("analyst", "admin")
user = current_user()
is_admin = user.role == "admin"
st.title("Your alerts" if vendor_ids else "Alerts")
st.caption("Rules are evaluated by the scheduler every few seconds when due; each rule (or each vendor, category "
           "or region of it) moves OK → Pending → Firing → Resolved, and notifies once per change. "
           + ("You see every user's rules." if is_admin else "You see your own rules.")
           + (" Yours watch your own sales, evaluated on your own database role, and notify your vendors' users."
              if vendor_ids else ""))
flash.show("alerts")

rows = load_rules(None if is_admin else user.username)
W.render_summary(rows, key="alerts_summary")
shown = W.render_rule_list(user, rows, key="alerts")
if not shown.empty:
    ids = [int(i) for i in shown["rule_id"]]
    wanted = st.session_state.get("alerts_pick") or st.query_params.get("rule")
    worst = [int(i) for i, s in zip(shown["rule_id"], shown["state"]) if s in ("error", "firing")]
    try:
        index = ids.index(int(wanted)) if wanted is not None else ids.index(worst[0]) if worst else 0
    except ValueError:
        index = 0
    labels = dict(zip(ids, shown["name"] + " · " + shown["owner"]))
    picked = st.selectbox("Rule", ids, index=index, key="alerts_rule", format_func=labels.get)
    st.session_state["alerts_pick"] = picked
    rule = shown.set_index("rule_id").loc[picked].to_dict() | {"rule_id": picked}
    W.render_rule_detail(user, rule, key="alerts_detail")

st.divider()
editing_id = st.session_state.get("alerts_detail_editing")
editing = None
if editing_id is not None:
    editing = load_rule(editing_id, None if is_admin else user.username)
    if editing is None:   # deleted meanwhile (another tab, another user)
        st.session_state.pop("alerts_detail_editing", None)
        editing_id = None
saved = W.render_form(user, key=f"alerts_form_{editing_id or 'new'}", editing=editing)
if saved is not None:
    st.session_state.pop("alerts_detail_editing", None)
    flash.later("alerts", f"Saved rule {saved}: the scheduler evaluates it within seconds.")
    st.session_state["alerts_pick"] = saved
    st.rerun()
if editing and st.button("Cancel editing", key="alerts_cancel"):
    st.session_state.pop("alerts_detail_editing", None)
    st.rerun()
