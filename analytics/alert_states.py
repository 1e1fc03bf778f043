"""The lifecycle of one alert instance (a rule, or one fan-out value of it), as a pure function:
what an evaluation's outcome does to the state, and whether it notifies.

States: OK → PENDING (breached, fewer than `for` evaluations in a row) → FIRING → RESOLVED → OK,
and NO_DATA and ERROR when the evaluation cannot say. One notification per transition into
FIRING, RESOLVED (if the rule asks for it), NO_DATA and ERROR, plus a repeat while FIRING every
repeat interval; none while muted (the transition is still recorded). The clock is a parameter,
so the table of cases in the tests is the whole behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STATES = ("ok", "pending", "firing", "resolved", "no_data", "error")
OUTCOMES = ("breach", "clear", "no_data", "error")


@dataclass(frozen=True)
class Instance:
    state: str = "ok"
    pending: int = 0                          # breaching evaluations in a row while PENDING
    last_notified_at: datetime | None = None  # of the current FIRING episode (for repeats)


@dataclass(frozen=True)
class Rule:
    for_evaluations: int = 1                  # breaching evaluations in a row before FIRING
    repeat: timedelta | None = None           # re-notify while FIRING this often (None: never)
    notify_on_resolve: bool = True
    muted_until: datetime | None = None


@dataclass(frozen=True)
class Step:
    state: str
    pending: int
    notify: str | None        # "firing", "repeat", "resolved", "no_data", "error" or None
    changed: bool             # the state changed: an event is recorded
    last_notified_at: datetime | None
    muted: bool = False       # a notification was due but the rule is muted


def step(instance: Instance, outcome: str, rule: Rule, now: datetime) -> Step:
    """The instance after one evaluation whose outcome is breach, clear, no_data or error."""
    if instance.state not in STATES:
        raise ValueError(f"unknown state {instance.state!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if rule.for_evaluations < 1:
        raise ValueError("for: at least one evaluation")
    state, pending, notify, last = instance.state, instance.pending, None, instance.last_notified_at
    if outcome in ("no_data", "error"):
        new, pending = outcome, 0
        notify = outcome if state != outcome else None
    elif outcome == "breach":
        if state == "firing":
            new = "firing"
            if rule.repeat is not None and last is not None and now - last >= rule.repeat:
                notify = "repeat"
        else:
            pending = (pending if state == "pending" else 0) + 1
            if pending >= rule.for_evaluations:
                new, pending, notify = "firing", 0, "firing"
            else:
                new = "pending"
    else:  # clear
        pending = 0
        if state == "firing":
            new = "resolved"
            notify = "resolved" if rule.notify_on_resolve else None
        else:
            new = "ok"
    muted = notify is not None and rule.muted_until is not None and now < rule.muted_until
    if muted:
        notify = None
    if notify in ("firing", "repeat") or (notify is None and new == "firing" and state != "firing"):
        last = now            # a muted start of FIRING counts as notified: repeats go on from it
    if new != "firing":
        last = None
    return Step(new, pending, notify, new != state, last, muted)
