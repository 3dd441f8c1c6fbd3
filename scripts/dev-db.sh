#!/usr/bin/env bash
# Development aid: a throwaway PostgreSQL (port ${PGPORT:-55433}) and Redis (port
# ${REDISPORT:-56379}) with the musicdb schema, for poking at one twin service by hand.
# `scripts/dev-db.sh stop` stops them. Tests and drills never use this: they use the
# harness's backends.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${DEV_DB_DIR:-/tmp/runbook-drill-dev}
pgport=${PGPORT:-55433}
redisport=${REDISPORT:-56379}
bin=/usr/lib/postgresql/15/bin

if [ "${1:-start}" = stop ]; then
  [ -f "$dir/pg/postmaster.pid" ] && kill -QUIT "$(head -1 "$dir/pg/postmaster.pid")" || true
  redis-cli -p "$redisport" shutdown nosave 2>/dev/null || true
  rm -rf "$dir"
  exit 0
fi

mkdir -p "$dir" && chmod 755 "$dir"
if [ ! -d "$dir/pg" ]; then
  install -d -o postgres -g postgres "$dir/pg"
  runuser -u postgres -- "$bin/initdb" -D "$dir/pg" -U postgres -A trust >/dev/null
fi
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w \
  -o "-p $pgport -k '' -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'musicdb_user') THEN
    CREATE ROLE musicdb_user LOGIN;
    GRANT pg_read_all_stats, pg_signal_backend TO musicdb_user;
  END IF;
END \$\$;
SQL
if ! psql -h 127.0.0.1 -p "$pgport" -U postgres -lqt | cut -d'|' -f1 | grep -qw musicdb; then
  psql -h 127.0.0.1 -p "$pgport" -U postgres -q -c "CREATE DATABASE musicdb OWNER musicdb_user"
  for f in "$here"/fixtures/migrations/*.sql; do
    psql -h 127.0.0.1 -p "$pgport" -U musicdb_user -d musicdb -v ON_ERROR_STOP=1 -q -f "$f"
  done
fi
redis-server --port "$redisport" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile "$dir/redis.log" >/dev/null
echo "DATABASE_URL=postgres://musicdb_user@127.0.0.1:$pgport/musicdb"
echo "REDIS_URL=redis://127.0.0.1:$redisport"
