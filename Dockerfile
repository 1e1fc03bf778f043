# One image for the app and the scheduler:
#   docker run IMAGE                                  -> the Streamlit app on :8501
#   docker run IMAGE python -m reports.scheduler      -> the scheduler
# Point DATABASE_URL at your PostgreSQL; the embedded server is for laptops, not containers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 app
WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app . .
USER app
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
CMD ["sh", "-c", "python -m data migrate && exec streamlit run app.py --server.port 8501 --server.address 0.0.0.0 --server.headless true"]
