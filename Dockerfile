# botcore: one image for the AI signal service, the trading engine and the dashboard.
#   docker build -t botcore .
#   docker compose up            (see docker-compose.yml: start order and health checks)
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# torch from the CPU wheel index first: an unpinned torch would pull gigabytes of CUDA packages
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY botcore ./botcore
RUN pip install --no-cache-dir -e .
COPY data ./data
COPY pipelines ./pipelines
COPY dashboards ./dashboards

# State (models, secrets, the SQLite store) lives on a volume
ENV BOTCORE_DATA_DIR=/var/lib/botcore PYTHONUNBUFFERED=1 BOTCORE_AI__HOST=0.0.0.0 BOTCORE_API__HOST=0.0.0.0 BOTCORE_DASHBOARD__HOST=0.0.0.0
VOLUME /var/lib/botcore
EXPOSE 8000 8080 3000
RUN useradd --system --home /var/lib/botcore botcore && mkdir -p /var/lib/botcore && chown botcore /var/lib/botcore
USER botcore

CMD ["botcore", "run"]
