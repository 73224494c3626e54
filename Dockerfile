# syntax=docker/dockerfile:1
# The console's production image: `docker build -t kube-service-console .` (see docs/deploy.md).
#
# Two stages: the first installs exactly requirements-prod.lock (the production dependencies, every package checked
# against its hash, wheels only, so no compiler is needed), compiles the zh-Hans catalog and collects the static
# files; the second holds only the result and runs gunicorn as an unprivileged user. tests/integration/test_image.py
# reads this file and also builds the image (`make image`, with podman) and runs it.
#
# PYTHON_IMAGE is any Debian bookworm image with Python 3.11 as `python`: the public one by default; the tests
# build on one made from Debian's packages (tools/image.py), as no registry is reachable there.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# gettext's msgfmt compiles the translation catalog (the .mo files are not in git).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements-prod.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: -r /tmp/requirements.lock

WORKDIR /app
COPY manage.py ./
COPY console ./console
COPY kube ./kube
COPY clusters ./clusters
COPY services ./services
COPY templates ./templates
COPY static ./static
COPY locale ./locale
# Production settings with throwaway secrets (pip and setuptools go too: nothing installs at run time): these two commands read no secret and touch no database, and the
# static files must be collected with the production storage (WhiteNoise's hashed, compressed names).
RUN CONSOLE_ENV=production CONSOLE_SECRET_KEY=build-only CONSOLE_ENCRYPTION_KEYS=build-only \
    CONSOLE_DATA_DIR=/tmp/build-data CONSOLE_STATIC_ROOT=/app/staticfiles \
    /opt/venv/bin/python manage.py compilemessages --verbosity 0 \
    && CONSOLE_ENV=production CONSOLE_SECRET_KEY=build-only CONSOLE_ENCRYPTION_KEYS=build-only \
    CONSOLE_DATA_DIR=/tmp/build-data CONSOLE_STATIC_ROOT=/app/staticfiles \
    /opt/venv/bin/python manage.py collectstatic --no-input --verbosity 0 \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && /opt/venv/bin/python -m compileall -q /app /opt/venv \
    && rm -rf /tmp/build-data


FROM ${PYTHON_IMAGE}
# A fixed numeric uid, so the pod's runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 console \
    && useradd --system --uid 10001 --gid console --home-dir /app --no-create-home --shell /usr/sbin/nologin console
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# Files stay root's and read-only to the console; the only writable place it needs is /tmp (an emptyDir in
# deploy/, where the root filesystem is read-only): gunicorn's worker heartbeats, the metrics folder and, with
# SQLite, the data folder.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONSOLE_ENV=production \
    CONSOLE_STATIC_ROOT=/app/staticfiles \
    CONSOLE_DATA_DIR=/tmp/console-data \
    WEB_CONCURRENCY=2 \
    PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# The console's gunicorn configuration (console/gunicorn.py: its log format, the metrics folder under /tmp).
# gunicorn binds 0.0.0.0:$PORT when no --bind is given; WEB_CONCURRENCY sets the worker count (2 by default: see
# docs/deploy.md for the memory it takes). The graceful timeout fits the pod's 30 s grace period after its 5 s
# preStop sleep.
CMD ["gunicorn", "--config", "python:console.gunicorn", "console.wsgi:application", "--worker-tmp-dir", "/tmp", "--timeout", "60", "--graceful-timeout", "20"]
