"""What an alert notification says: its subject and facts (stored in the outbox row) and, when it is
sent, its email (text and HTML) and webhook body. Pure: nothing here reads or writes the database."""
from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from analytics import alerts as A
from analytics.metrics import format_value
from data.settings import Settings

HEADLINES = {"firing": "FIRING", "repeat": "still FIRING", "resolved": "RESOLVED", "no_data": "NO DATA",
             "error": "ERROR", "test": "TEST"}


def _value(metric: str | None, v: float | None) -> str:
    if v is None:
        return "no value"
    return format_value(metric, v, compact=False) if metric else f"{v:,.6g}"


def rule_facts(r: Any, window: A.Window | None, s: Settings, condition: str) -> dict:
    """What every notification of a rule in one tick shares (worked out once per rule); condition is
    the rule's condition in words (reports.alerts.describe_rule)."""
    return {"rule_id": r.rule_id, "name": r.name, "severity": r.severity, "condition": condition,
            "metric": r.metric if r.source == "metric" else None, "threshold": r.threshold,
            "change": r.condition in A.CHANGES, "link": f"{s.app_base_url}/alerts?rule={r.rule_id}",
            "window": ({"label": window.label(s.timezone),
                        "start": (window.span[0] if window.span else window.period.start).isoformat(),
                        "end": (window.span[1] if window.span else window.period.end).isoformat()} if window else None)}


def notification(rule: dict, fan_label: str, kind: str, obs: A.Observation, now: datetime) -> dict:
    """The outbox payload of one notification: its subject and the facts it tells (the bodies are
    rendered from them when it is sent, by render_alert). fan_label is empty for a rule without
    fan-out and for the evaluation as a whole."""
    who = f" · {fan_label}" if fan_label else ""
    return {"subject": f"[{rule['severity'].upper()}] {rule['name']}{who}: {HEADLINES[kind]}",
            "alert": {**rule, "kind": kind, "fan": who[3:], "value": obs.value, "baseline": obs.baseline,
                      "band": list(obs.band) if obs.band else None, "change_pct": obs.change, "note": obs.message,
                      "at": now.isoformat()}}


def render_alert(payload: dict) -> dict:
    """The email (subject, text, html) and webhook body (json) of a notification's facts."""
    a = payload["alert"]
    metric, kind = a["metric"], a["kind"]
    who = f" · {a['fan']}" if a["fan"] else ""
    window = a["window"]
    lines = [f"Rule: {a['name']} ({a['severity']})", f"Condition: {a['condition']}",
             f"Value: {_value(metric, a['value'])}" + (f" in {window['label']}" if window else "")]
    if a["baseline"] is not None:
        band = a["band"]
        lines.append(("Forecast" if band else "Compared with") + f": {_value(metric, a['baseline'])}"
                     + (f" (band {_value(metric, band[0])} – {_value(metric, band[1])})" if band else "")
                     + (f", a change of {a['change_pct']:+.1f} %" if a["change_pct"] is not None else ""))
    if a["threshold"] is not None:
        lines.append("Threshold: " + (f"{a['threshold']:g} %" if a["change"] else _value(metric, a["threshold"])))
    if a["note"]:
        lines.append(f"Note: {a['note']}")
    at = datetime.fromisoformat(a["at"]).astimezone(timezone.utc)
    lines += [f"Evaluated: {at:%Y-%m-%d %H:%M:%S} UTC", f"Open the rule: {a['link']}"]
    text = f"{a['name']}{who}: {HEADLINES[kind]}\n\n" + "\n".join(lines) + "\n"
    e = html.escape
    rows = "".join(f"<tr><td style='padding:3px 10px;color:#555'>{e(k)}</td>"
                   f"<td style='padding:3px 10px'>{e(v)}</td></tr>"
                   for k, _, v in (line.partition(": ") for line in lines[:-1]))
    colour = {"firing": "#b3261e", "repeat": "#b3261e", "resolved": "#1e7b34", "test": "#1f4e79"}.get(kind, "#8a6d00")
    body = (f"<div style='font-family:Helvetica,Arial,sans-serif;color:#222'>"
            f"<h2 style='margin:0 0 8px;color:{colour}'>{e(HEADLINES[kind])}: {e(a['name'])}{e(who)}</h2>"
            f"<table style='border-collapse:collapse;font-size:14px'>{rows}</table>"
            f"<p><a href='{e(a['link'])}'>Open the rule in Marketplace BI</a></p></div>")
    hook = {"text": f"*{HEADLINES[kind]}* {a['name']}{who}: {_value(metric, a['value'])} — {a['condition']}. "
                    f"<{a['link']}|Open>",
            "rule_id": a["rule_id"], "rule": a["name"], "severity": a["severity"], "kind": kind,
            "fan_value": a["fan"] or None, "value": a["value"], "baseline": a["baseline"], "threshold": a["threshold"],
            "condition": a["condition"], "window": window, "evaluated_at": a["at"], "url": a["link"]}
    return {"subject": payload["subject"], "text": text, "html": body, "json": hook}
