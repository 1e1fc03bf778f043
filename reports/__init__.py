"""Exporters, delivery, and the scheduler process. Never imports streamlit."""
