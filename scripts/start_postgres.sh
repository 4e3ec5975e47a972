#!/usr/bin/env bash
# Start a local PostgreSQL server for the shared-storage test of agents.tune; safe to run again.
#
# Installs the Debian package if needed (root), starts the cluster listening on 127.0.0.1 only,
# creates the role and database drumenv (password drumenv) and prints the Optuna storage URL
#   postgresql://drumenv:drumenv@127.0.0.1:5432/drumenv
# on stdout (everything else goes to stderr), so: url=$(bash scripts/start_postgres.sh)
# Override with DRUM_ENV_PG_PORT, DRUM_ENV_PG_USER, DRUM_ENV_PG_PASSWORD, DRUM_ENV_PG_DB.
set -euo pipefail
PORT=${DRUM_ENV_PG_PORT:-5432}
ROLE=${DRUM_ENV_PG_USER:-drumenv}
PASSWORD=${DRUM_ENV_PG_PASSWORD:-drumenv}
DB=${DRUM_ENV_PG_DB:-drumenv}
log() { echo "start_postgres: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -n -u postgres -- "$@"
  fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed and this is not root: cannot apt-get install postgresql"
    exit 1
  fi
  log "installing the postgresql Debian package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
fi

# the newest installed server version, and its cluster on PORT (created if missing)
VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
CLUSTER=$(pg_lsclusters -h | awk -v v="$VERSION" -v p="$PORT" '$1 == v && $3 == p {print $2; exit}')
if [ -z "$CLUSTER" ]; then
  CLUSTER=drumenv
  if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {f=1} END {exit !f}'; then
    log "creating cluster $VERSION/$CLUSTER on port $PORT"
    pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" >&2
  fi
fi
# loopback only (TCP); local admin goes through the Unix socket with peer authentication.
# A drop-in of the cluster's conf.d (Debian's postgresql.conf includes it) leaves the rest alone.
CONF_DIR=/etc/postgresql/$VERSION/$CLUSTER/conf.d
mkdir -p "$CONF_DIR"
printf "# written by drum-env scripts/start_postgres.sh\nlisten_addresses = '127.0.0.1'\n" \
  >"$CONF_DIR/drumenv-loopback.conf"

status=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}')
if [ "$status" != "online" ]; then
  log "starting cluster $VERSION/$CLUSTER"
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
else
  # already running: make a changed listen_addresses take effect
  listening=$(as_postgres psql -p "$PORT" -tAc "SHOW listen_addresses")
  if [ "$listening" != "127.0.0.1" ]; then
    pg_ctlcluster "$VERSION" "$CLUSTER" restart >&2
  fi
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2

# role and database (names and password are plain identifiers: no quoting tricks needed)
if [ "$(as_postgres psql -p "$PORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
  log "creating role $ROLE"
  as_postgres psql -q -v ON_ERROR_STOP=1 -p "$PORT" -c "CREATE ROLE \"$ROLE\" LOGIN PASSWORD '$PASSWORD'" >&2
else
  as_postgres psql -q -v ON_ERROR_STOP=1 -p "$PORT" -c "ALTER ROLE \"$ROLE\" LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(as_postgres psql -p "$PORT" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  log "creating database $DB"
  as_postgres createdb -p "$PORT" -O "$ROLE" "$DB" >&2
fi

echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
