#!/bin/sh
# Writes the secrets deploy/docker-compose.yml requires into an env file (default: deploy/.env, which
# compose reads and git ignores), each a fresh random value: the HS256 secret that signs users' tokens,
# the internal token routers send to nodes, the router's admin token (also Prometheus' scrape token),
# the cluster secret that signs membership records, the Kafka passwords of the services' user and of the
# broker's own, and Grafana's admin password. It never overwrites a file: delete it first to rotate every
# secret.
#   sh deploy/new-env.sh [FILE]
set -eu
file=${1:-$(dirname "$0")/.env}
if [ -e "$file" ]; then
  echo "new-env: $file exists; delete it first to replace its secrets" >&2
  exit 1
fi
# 48 characters of [A-Za-z0-9] from the kernel's CSPRNG (about 285 bits).
random() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48; }
umask 077
{
  echo "# Secrets for deploy/docker-compose.yml, written by deploy/new-env.sh. Never commit this file."
  echo "CHAT_AUTH_HS256_SECRET=$(random)"
  echo "CHAT_INTERNAL_TOKEN=$(random)"
  echo "CHAT_ROUTER_ADMIN_TOKEN=$(random)"
  echo "CHAT_CLUSTER_SECRET=$(random)"
  echo "CHAT_KAFKA_SASL_PASSWORD=$(random)"
  echo "KAFKA_ADMIN_PASSWORD=$(random)"
  echo "GRAFANA_ADMIN_PASSWORD=$(random)"
} >"$file"
echo "new-env: wrote $file"
