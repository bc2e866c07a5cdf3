# syntax=docker/dockerfile:1
# One image for every service: `python -m services.<name>` (the gateway by default).
# Pin the base by digest for reproducible builds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim

# The dashboard's Chart.js, exactly as package-lock.json pins it (served by the gateway itself).
FROM node:20-slim AS dashboard-assets
WORKDIR /assets
COPY services/gateway/dashboard/frontend/package.json services/gateway/dashboard/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
COPY services ./services
COPY schemas ./schemas
# Not editable: the migrations and JSON Schemas travel as package data inside site-packages.
# The check runs outside /src so it sees the installed copy, not the source tree.
RUN pip install -c constraints.txt . \
 && cd / && python -c "import importlib.resources as r; \
assert any(f.name.endswith('.sql') for f in r.files('services.gateway.migrations').iterdir()); \
assert any(f.name.endswith('.json') for f in r.files('schemas').joinpath('json').iterdir()); \
assert r.files('services.gateway.dashboard').joinpath('static/app.js').is_file()"
COPY --from=dashboard-assets /assets/node_modules/chart.js/dist/chart.umd.min.js \
     /opt/venv/lib/python3.11/site-packages/services/gateway/dashboard/frontend/node_modules/chart.js/dist/

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 callpipe \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin callpipe
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0
# An empty working directory: nothing in it can shadow the installed packages.
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
