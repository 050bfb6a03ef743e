# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WIDGET_STORE_DATA_DIR=/data

RUN useradd --create-home --uid 10001 store \
    && mkdir /data && chown store /data

WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir widget_store html migrations \
    && touch widget_store/__init__.py alembic.ini \
    && pip install . \
    && pip uninstall -y widget-store

# Then the source, compiled to bytecode at build time.
COPY widget_store ./widget_store
COPY html ./html
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-deps . && python -m compileall -q /usr/local/lib/python3.11/site-packages/widget_store

USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["widget-store", "serve", "--host", "0.0.0.0", "--port", "8000"]
