"""Metrics, aggregation queries over rollups, and (later) models. Never imports streamlit."""
