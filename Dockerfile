FROM python:3.11-slim
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
RUN pip install --no-cache-dir .
USER nobody
