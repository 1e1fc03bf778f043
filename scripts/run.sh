#!/usr/bin/env bash
# Starts the scheduler in the background and the app in the foreground; Ctrl-C stops both, and
# the embedded PostgreSQL server stops with the last process that holds it.
set -euo pipefail
PY=${PY:-.venv/bin/python}
PORT=${PORT:-8501}
"$PY" -m reports.scheduler &
scheduler=$!
cleanup() {
    trap - INT TERM EXIT
    kill -TERM "$scheduler" 2>/dev/null || true
    wait "$scheduler" 2>/dev/null || true
}
trap cleanup INT TERM EXIT
echo "Marketplace BI on http://localhost:$PORT (scheduler pid $scheduler). Ctrl-C stops everything."
"$PY" -m streamlit run app.py --server.headless true --server.port "$PORT" --browser.gatherUsageStats false
