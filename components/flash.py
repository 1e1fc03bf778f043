"""A confirmation that outlives st.rerun(): a message shown just before a rerun is cleared before
the browser draws it, so it is kept in the session under a key and drawn by the next run."""
from __future__ import annotations

import streamlit as st


def later(key: str, text: str) -> None:
    """Keeps text for the next run's show(key)."""
    st.session_state[f"{key}_flash"] = text


def show(key: str, *, toast: bool = False) -> None:
    """Draws (once) what later(key) kept: a success box, or a toast."""
    text = st.session_state.pop(f"{key}_flash", None)
    if text is None:
        return
    if toast:
        st.toast(text, icon="✅")
    else:
        st.success(text, icon=":material/check:")
