"""The alert lifecycle as a table: (previous state, outcome, `for`, repeat, …) → (new state,
notification or not), with a controllable clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from analytics.alert_states import Instance, Rule, step

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)

# (state, pending, last notified (hours before now) or None, outcome, for, repeat (hours) or None,
#  notify on resolve, muted, → state, pending, notification, changed)
CASES = [
    ("ok", 0, None, "clear", 1, None, True, False, "ok", 0, None, False),
    ("ok", 0, None, "breach", 1, None, True, False, "firing", 0, "firing", True),
    ("ok", 0, None, "breach", 3, None, True, False, "pending", 1, None, True),
    ("pending", 1, None, "breach", 3, None, True, False, "pending", 2, None, False),
    ("pending", 2, None, "breach", 3, None, True, False, "firing", 0, "firing", True),
    ("pending", 2, None, "clear", 3, None, True, False, "ok", 0, None, True),
    ("firing", 0, 0.5, "breach", 1, None, True, False, "firing", 0, None, False),       # no repeat set
    ("firing", 0, 0.5, "breach", 1, 1, True, False, "firing", 0, None, False),          # repeat not due yet
    ("firing", 0, 1, "breach", 1, 1, True, False, "firing", 0, "repeat", False),        # due: exactly 1 h
    ("firing", 0, 3, "breach", 1, 1, True, False, "firing", 0, "repeat", False),
    ("firing", 0, 0.2, "clear", 1, 1, True, False, "resolved", 0, "resolved", True),
    ("firing", 0, 0.2, "clear", 1, 1, False, False, "resolved", 0, None, True),         # resolve not notified
    ("resolved", 0, None, "clear", 1, None, True, False, "ok", 0, None, True),
    ("resolved", 0, None, "breach", 1, None, True, False, "firing", 0, "firing", True),
    ("resolved", 0, None, "breach", 2, None, True, False, "pending", 1, None, True),
    ("ok", 0, None, "no_data", 1, None, True, False, "no_data", 0, "no_data", True),
    ("no_data", 0, None, "no_data", 1, None, True, False, "no_data", 0, None, False),   # once, not every tick
    ("no_data", 0, None, "breach", 1, None, True, False, "firing", 0, "firing", True),
    ("no_data", 0, None, "clear", 1, None, True, False, "ok", 0, None, True),
    ("firing", 0, 0.2, "error", 1, 1, True, False, "error", 0, "error", True),
    ("error", 0, None, "error", 1, None, True, False, "error", 0, None, False),
    ("error", 0, None, "clear", 1, None, True, False, "ok", 0, None, True),
    ("pending", 1, None, "error", 2, None, True, False, "error", 0, "error", True),
    ("ok", 0, None, "breach", 1, None, True, True, "firing", 0, None, True),            # muted: recorded, silent
    ("firing", 0, 0.2, "clear", 1, None, True, True, "resolved", 0, None, True),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}+{c[3]}(for {c[4]})->{c[8]}" for c in CASES])
def test_transitions(case):
    state, pending, last_h, outcome, for_n, repeat_h, on_resolve, muted, want_state, want_pending, want_notify, \
        want_changed = case
    instance = Instance(state, pending, None if last_h is None else T0 - last_h * H)
    rule = Rule(for_n, None if repeat_h is None else repeat_h * H, on_resolve, T0 + H if muted else None)
    got = step(instance, outcome, rule, T0)
    assert (got.state, got.pending, got.notify, got.changed) == (want_state, want_pending, want_notify, want_changed)
    assert got.muted == (muted and want_notify is None and want_state in ("firing", "resolved"))


def test_a_breach_that_lasts_fires_once_repeats_on_its_interval_and_resolves_once():
    rule = Rule(for_evaluations=2, repeat=timedelta(minutes=30))
    inst, sent = Instance(), []
    for minute, outcome in [(0, "breach"), (5, "breach"), (10, "breach"), (35, "breach"), (40, "breach"),
                            (65, "breach"), (70, "clear"), (75, "clear")]:
        s = step(inst, outcome, rule, T0 + timedelta(minutes=minute))
        inst = Instance(s.state, s.pending, s.last_notified_at)
        if s.notify:
            sent.append((minute, s.notify))
    assert sent == [(5, "firing"), (35, "repeat"), (65, "repeat"), (70, "resolved")]
    assert inst.state == "ok"


def test_a_muted_firing_repeats_from_when_it_began_once_the_mute_ends():
    rule = Rule(repeat=timedelta(minutes=30), muted_until=T0 + timedelta(minutes=20))
    s = step(Instance(), "breach", rule, T0)
    assert (s.state, s.notify, s.muted) == ("firing", None, True)
    later = step(Instance(s.state, s.pending, s.last_notified_at), "breach", rule, T0 + timedelta(minutes=31))
    assert later.notify == "repeat"


@pytest.mark.parametrize("bad,message", [
    ({"outcome": "maybe"}, "unknown outcome 'maybe'"),
    ({"state": "sleepy"}, "unknown state 'sleepy'"),
    ({"for_evaluations": 0}, "for: at least one evaluation"),
])
def test_bad_input_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        step(Instance(bad.get("state", "ok")), bad.get("outcome", "breach"),
             Rule(for_evaluations=bad.get("for_evaluations", 1)), T0)
