#!/usr/bin/env bash
# Install what is missing, and nothing else: Java and Maven (Debian), uv (PyPI), the Python
# environment from uv.lock, the Kafka jars and the JMX exporter agent (Maven Central), Postgres and
# Prometheus with promtool (Debian).
# Fast when everything is present, so every make target can call it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

apt_packages=()
command -v java >/dev/null || apt_packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || apt_packages+=(maven)
command -v pg_createcluster >/dev/null || apt_packages+=(postgresql)
command -v curl >/dev/null || apt_packages+=(curl)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "install: apt-get install ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# Prometheus 2.42 and promtool (the rule tests). Without its recommends (node exporter and friends,
# which would start services of their own); supervisord runs Prometheus (infra/supervisord.conf), so
# the package's own service, which would take :9090, is stopped and disabled once, when installed.
if ! command -v promtool >/dev/null; then
  echo "install: apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

if ! command -v uv >/dev/null; then
  echo "install: uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --all-packages --quiet

bash infra/kafka/kafka.sh install
