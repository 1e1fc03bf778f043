"""One plotly look for every chart, and number formats for tables."""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#2563eb", "#f97316", "#10b981", "#a855f7", "#ef4444", "#0ea5e9", "#eab308", "#64748b"]
COMPARE = "#94a3b8"

_MBI = go.layout.Template(
    layout=dict(
        font=dict(family="Inter, system-ui, sans-serif", size=13, color="#0f172a"),
        colorway=PALETTE,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        margin=dict(l=10, r=10, t=40, b=10),
        hovermode="x unified",
        xaxis=dict(showgrid=False, linecolor="#cbd5e1"),
        yaxis=dict(gridcolor="#e2e8f0", zeroline=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
)
# Merged once: a "plotly_white+mbi" default would be merged again for every figure (12 % of a
# warm overview render).
pio.templates["mbi"] = pio.templates.merge_templates("plotly_white", _MBI)
pio.templates.default = "mbi"

TICK_FORMAT = {"money": ",.3~s", "count": ",.3~s", "percent": ".1%"}
TICK_PREFIX = {"money": "€", "count": "", "percent": ""}
HOVER_FORMAT = {"money": "€,.2f", "count": ",.0f", "percent": ".2%"}
# st.column_config's number format per kind of metric (analytics.metrics: fmt), for every table.
NUMBER_FORMAT = {"money": "euro", "percent": "percent", "count": "localized"}
