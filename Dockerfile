# Engage: one image for every long-running part (workers, the trigger feed)
# and for one-off commands (publish, profile, status).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ENGAGE_HOME=/var/lib/engage

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engage ./engage
COPY events ./events
COPY projections ./projections
COPY rules ./rules
COPY consumers ./consumers
COPY schemas ./schemas
RUN pip install . && useradd --system --create-home engage \
    && mkdir -p /var/lib/engage && chown engage /var/lib/engage
USER engage

ENTRYPOINT ["engage"]
CMD ["--help"]
