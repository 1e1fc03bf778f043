"""Reusable Streamlit widgets: filters, KPI cards, charts, tables, cached loaders."""
