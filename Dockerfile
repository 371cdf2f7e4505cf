# One image per service, built from the repository root (the uv workspace and its one lock file):
#   docker build --build-arg SERVICE=order -t ecommerce/order-service:dev .
# The image holds the service's three entry points (<svc>-api, <svc>-relay, <svc>-worker), its
# migrations (alembic, run from services/<svc>), the topic provisioning script and the development
# keys' script (compose's `keys` service).
FROM python:3.11-slim

ARG SERVICE
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=order|payment|inventory" >&2; exit 1; }

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

# uv from PyPI, the version the lock file was written with.
RUN pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"

WORKDIR /app

# Third-party dependencies first: this layer changes only when the lock does.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/order/pyproject.toml services/order/
COPY services/payment/pyproject.toml services/payment/
COPY services/inventory/pyproject.toml services/inventory/
RUN uv sync --frozen --no-dev --no-install-workspace --package "${SERVICE}-service"

# Then the code: the shared library and the service itself.
COPY shared/ shared/
COPY services/ services/
COPY infra/scripts/provision_topics.py infra/scripts/
COPY infra/scripts/dev_keys.py infra/scripts/
# The Debezium relay's setup (COMPOSE_PROFILES=debezium: connectors.py provision and register).
COPY infra/scripts/connectors.py infra/scripts/postgres_superuser.py infra/scripts/
COPY infra/connect/connector.json infra/connect/
RUN uv sync --frozen --no-dev --package "${SERVICE}-service"

# The key volumes' mount points, owned by the app user: a new named volume takes their ownership,
# so the `keys` service (running as app) can write the keys and only app can read the private ones.
RUN useradd --system --uid 10001 --no-create-home app \
    && mkdir -p /keys/all /keys/public /keys/payment && chown -R app /keys
USER app
CMD ["sh", "-c", "echo 'choose a command: <service>-api, <service>-relay or <service>-worker' >&2; exit 2"]
