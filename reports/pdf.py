"""PDF reports with reportlab: title, period and filters, a KPI summary, charts drawn by matplotlib
as images (no browser), tables split page by page with their header repeated, and "page x of y"
on every page. A4 landscape, dark text on white, so it prints well."""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from reports.exporters import column_kind, plain

ROWS_PER_TABLE = 30        # one table per page at most: never one huge table
MAX_CELL_CHARS = 48
MAX_PDF_COLUMNS = 10


def _fmt(value, kind: str | None) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, Decimal)):
        v = float(value)
        if math.isnan(v):
            return ""
        if kind == "percent":
            return f"{v * 100:.1f} %"
        if kind == "count" or (isinstance(value, int) and kind is None):
            return f"{v:,.0f}"
        return f"{v:,.2f}" if kind == "money" or abs(v) >= 1 or v == 0 else f"{v:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"


def chart_png(chart: Any, width_in: float = 9.5, height_in: float = 3.2) -> bytes:
    """Draws a chart (reports.templates.Chart) with matplotlib's Agg backend; returns PNG bytes."""
    # Lazy: matplotlib is heavy and only PDFs draw charts; the Agg backend must be chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=110)
    try:
        if chart.kind == "line":
            ax.plot(chart.x, chart.y, color="#1f4e79", linewidth=1.6)
            if chart.y2 is not None:
                ax.plot(chart.x, chart.y2, color="#9aa9b8", linewidth=1.2, linestyle="--", label=chart.y2_label)
                ax.legend(frameon=False, fontsize=8)
        else:
            labels = [str(v)[:24] for v in chart.x]
            ax.barh(labels[::-1], list(chart.y)[::-1], color="#1f4e79")
        ax.set_title(chart.title, fontsize=10, loc="left")
        axis = ax.yaxis if chart.kind == "line" else ax.xaxis
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def _numbered_canvas(footer: str):
    from reportlab.pdfgen import canvas   # lazy: reportlab is heavy and only PDFs need it

    class NumberedCanvas(canvas.Canvas):
        """Draws "page x of y" once the number of pages is known (a second pass over saved pages)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont("Helvetica", 7)
                self.setFillGray(0.35)
                w, _ = self._pagesize
                self.drawString(28, 18, footer)
                self.drawRightString(w - 28, 18, f"Page {self._pageNumber} of {total}")
                super().showPage()
            super().save()
    return NumberedCanvas


def render_pdf(report: Any, out: str | Path | BinaryIO) -> int:
    """Writes report (reports.templates.Report) as a PDF to out (a path or binary file); returns
    the number of table rows written."""
    # Lazy: reportlab is heavy and only PDFs need it (the scheduler and the pages load this module).
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    table_heading = ParagraphStyle("table_heading", parent=styles["Heading2"], keepWithNext=1)
    page = landscape(A4)
    doc = SimpleDocTemplate(out, pagesize=page, leftMargin=28, rightMargin=28, topMargin=28, bottomMargin=36,
                            title=report.title, author="Marketplace BI")
    width = page[0] - 56
    story = [Paragraph(_escape(report.title), styles["Title"])]
    lines = [f"<b>Period:</b> {_escape(report.period_label)}", f"<b>Filters:</b> {_escape(report.filters or 'none')}",
             f"<b>Generated:</b> {_escape(report.generated)}"]
    story += [Paragraph(line, styles["Normal"]) for line in lines] + [Spacer(1, 10)]
    grid = TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8),
                       ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f4e79")),
                       ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                       ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef2f6")]),
                       ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0bac4")),
                       ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                       ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)])
    if report.kpis:
        story.append(Paragraph("Summary", styles["Heading2"]))
        rows = [["Metric", "Value", "Previous period", "Change"]] + [list(k) for k in report.kpis]
        t = Table(rows, colWidths=[width * 0.3, width * 0.2, width * 0.2, width * 0.15], hAlign="LEFT")
        t.setStyle(grid)
        t.setStyle(TableStyle([("ALIGN", (1, 1), (-1, -1), "RIGHT")]))
        story += [t, Spacer(1, 10)]
    for chart in report.charts:
        story += [Image(io.BytesIO(chart_png(chart)), width=9.5 * inch, height=3.2 * inch), Spacer(1, 6)]
    written = 0
    for table in report.tables:
        columns = list(table.pdf_columns or table.columns)[:MAX_PDF_COLUMNS]
        index = [list(table.columns).index(c) for c in columns]
        kinds = [column_kind(c) for c in columns]
        raw = [row for batch in table.batches() for row in batch]   # read once: a table may be a query
        rows = [[_fmt(row[i], kinds[k]) for k, i in enumerate(index)] for row in raw]
        written += len(rows)
        heading = Paragraph(_escape(table.name) + f" <font size=8 color='#666666'>({len(rows):,} rows)</font>",
                            table_heading)
        if not rows:
            story += [heading, Paragraph("No rows.", styles["Normal"]), Spacer(1, 8)]
            continue
        widths = _col_widths([columns] + rows[:200], width)
        numeric = [k for k, c in enumerate(columns)
                   if any(isinstance(plain(r[index[k]]), (int, float, Decimal)) for r in raw[:50])]
        for start in range(0, len(rows), ROWS_PER_TABLE):
            chunk = [columns] + rows[start:start + ROWS_PER_TABLE]
            t = Table(chunk, colWidths=widths, repeatRows=1, hAlign="LEFT")
            t.setStyle(grid)
            for k in numeric:
                t.setStyle(TableStyle([("ALIGN", (k, 1), (k, -1), "RIGHT")]))
            story += [heading, t] if start == 0 else [Spacer(1, 4), t]
    doc.build(story, canvasmaker=_numbered_canvas(f"{report.title} · {report.period_label}"))
    return written


def _col_widths(rows: Sequence[Sequence[str]], width: float) -> list[float]:
    longest = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    weights = [min(max(n, 4), 40) for n in longest]
    total = sum(weights)
    return [width * w / total for w in weights]


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
