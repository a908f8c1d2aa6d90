# syntax=docker/dockerfile:1
# Multi-stage build: dependencies from the hash-pinned lock file, then a slim non-root
# runtime. Point FEEDBACK_DATABASE_URL at your PostgreSQL (see docker-compose.yml);
# without it the container runs the embedded PostgreSQL under /srv/data.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN pip install uv==0.13.9
WORKDIR /src
COPY requirements.lock ./
RUN uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:3.11-slim AS runtime
RUN useradd --system --create-home --home-dir /srv --uid 10001 feedback \
 && mkdir -p /srv/data && chown feedback:feedback /srv/data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FEEDBACK_HOST=0.0.0.0 \
    FEEDBACK_PORT=8000 \
    FEEDBACK_DATA_DIR=/srv/data
USER feedback
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
CMD ["feedback-service", "serve"]
