#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) answer, starting them with
# this machine kind's own commands when they do not. Only loopback addresses.
set -u

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
pg_up() {
  if command -v pg_isready >/dev/null; then pg_isready -h 127.0.0.1 -p 5432 -q
  else psql -h 127.0.0.1 -p 5432 -d postgres -Atc 'select 1' >/dev/null 2>&1; fi
}
wait_for() { for _ in $(seq 1 60); do "$1" && return 0; sleep 0.5; done; return 1; }

if ! redis_up; then
  echo "Redis is down: starting it" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis_up || { echo "Redis did not come up" >&2; exit 1; }
fi

if ! pg_up; then
  echo "PostgreSQL is down: starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for pg_up || { echo "PostgreSQL did not come up" >&2; exit 1; }
fi
echo "Redis and PostgreSQL are up" >&2
