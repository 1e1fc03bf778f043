# One image for the app and the scheduler:
#   docker run IMAGE                                  -> migrates, then the Streamlit app on :8501
#   docker run IMAGE python -m reports.scheduler      -> the scheduler
# Point DATABASE_URL at your PostgreSQL (docker-compose.yml brings one); the embedded server is
# for laptops, not containers. The HEALTHCHECK checks whichever of the two the container runs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPORT_DIR=/exports
RUN useradd --create-home --uid 10001 app \
    && mkdir /exports && chown app:app /exports
WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app . .
USER app
# A named volume mounted here starts with this directory's owner, so uid 10001 can write exports.
VOLUME /exports
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-m", "scripts.healthcheck"]
CMD ["sh", "-c", "python -m data migrate && exec streamlit run app.py --server.port 8501 --server.address 0.0.0.0 --server.headless true"]
