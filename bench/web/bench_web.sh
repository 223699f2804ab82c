#!/usr/bin/env bash
# bench-web: requests/s of web-view's dashboard (/) and /api/readings with wrk, over a
# throwaway PostgreSQL holding ROWS readings (default 100,000: 4 sensors at 1 Hz).
#   build/bin/bench-web [ROWS] [SECONDS]
# Reference, in the same run: the Flask table page of the tutorial stack this replaces
# (flask_reference.py beside this script, installed with the build; needs python3-flask and
# python3-psycopg2, both in ./run's PACKAGES), measured like web-view's "/".
set -euo pipefail
ROWS="${1:-100000}"
SECONDS_EACH="${2:-10}"
BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_BIN=/usr/lib/postgresql/15/bin
command -v wrk >/dev/null || { echo "bench-web: wrk is missing (apt-get install wrk)" >&2; exit 1; }

DIR="$(mktemp -d /tmp/rill-bench-web-XXXXXX)"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
WEB_PID=""
cleanup() {
    [ -n "$WEB_PID" ] && kill -TERM "$WEB_PID" 2>/dev/null && wait "$WEB_PID" 2>/dev/null || true
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U rill --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w \
    -o "-k $DIR -c listen_addresses='' -c fsync=off -c shared_buffers=128MB" start >/dev/null
CONN="host=$DIR user=rill dbname=rill"
psql "host=$DIR user=rill dbname=postgres" -qc "CREATE DATABASE rill"
# The schema exactly as store-sub makes it: store-sub migrates when it opens the database (it
# subscribes to nothing here), then goes; the rows and their rollups are loaded by SQL.
"$BIN/store-sub" --db "$CONN" --connect tcp://127.0.0.1:9 --metrics 127.0.0.1:0 \
    2>"$DIR/store-sub.log" &
STORE_PID=$!
for _ in $(seq 100); do
    [ "$(psql "$CONN" -Atc "SELECT count(*) FROM pg_tables WHERE tablename = 'readings_1h'" \
         2>/dev/null)" = 1 ] && break
    sleep 0.1
done
kill -TERM "$STORE_PID" && wait "$STORE_PID" || true
psql "$CONN" -q <<SQL
INSERT INTO readings (sensor, seq, ts, temperature, humidity)
SELECT 'sensor-' || (n % 4), n / 4 + 1, now() - (($ROWS - n) / 4) * interval '1 second',
       20 + 5 * sin(n / 5000.0), 50 + 10 * cos(n / 7000.0)
FROM generate_series(0, $ROWS - 1) n;
INSERT INTO readings_1m SELECT sensor, date_trunc('minute', ts, 'UTC'), count(*),
       sum(temperature::float8), min(temperature), max(temperature), sum(humidity::float8),
       min(humidity), max(humidity), count(temperature), count(humidity) FROM readings
       GROUP BY 1, 2;
INSERT INTO readings_1h SELECT sensor, date_trunc('hour', bucket, 'UTC'), sum(n), sum(t_sum),
       min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), sum(t_n), sum(h_n)
       FROM readings_1m GROUP BY 1, 2;
ANALYZE;
SQL

"$BIN/web-view" --db "$CONN" --listen 127.0.0.1:0 --db-connections 8 2>"$DIR/web-view.log" &
WEB_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$DIR/web-view.log" 2>/dev/null && break
    sleep 0.1
done
URL="$(grep -o 'http://127.0.0.1:[0-9]*/' "$DIR/web-view.log" | head -1)"
[ -n "$URL" ] || { cat "$DIR/web-view.log" >&2; exit 1; }

echo "bench-web: $(psql "$CONN" -Atc 'SELECT count(*) FROM readings') rows, web-view at $URL," \
     "wrk -t2 -c16 -d${SECONDS_EACH}s, $(nproc) cores"
for path in "" "api/readings?limit=50" "api/readings?sensor=sensor-1&limit=100" \
            "api/series?sensor=sensor-1&points=1000" "api/sensors"; do
    out="$(wrk -t2 -c16 -d"${SECONDS_EACH}s" --latency "$URL$path")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    errs="$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)"
    printf '  %-42s %10s req/s   p50 %8s   p99 %8s %s\n' "/${path#/}" "$rps" "$p50" "$p99" "$errs"
done
curl -s "${URL}metrics" | grep -E "^rill_http_requests_total" | sed "s/^/  /"

# The reference in the same run: the tutorial stack's Flask page over the same table.
REF="$BIN/flask_reference.py"
PY=/usr/bin/python3  # Debian's, where python3-flask and python3-psycopg2 install
if [ -f "$REF" ] && "$PY" -c "import flask, psycopg2" 2>/dev/null; then
    FPORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # Its query (ORDER BY ts DESC LIMIT 50 over every sensor) gets the btree on ts the tutorial
    # schema has; rill reads newest-first per sensor through (sensor, ts DESC) instead.
    psql "$CONN" -qc "CREATE INDEX reference_ts_idx ON readings (ts DESC)"
    "$PY" "$REF" "$CONN" "$FPORT" >"$DIR/flask.log" 2>&1 &
    FLASK_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$FPORT/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    web="$(wrk -t2 -c16 -d"${SECONDS_EACH}s" "$URL" | awk '/Requests\/sec/ {print $2}')"
    flask="$(wrk -t2 -c16 -d"${SECONDS_EACH}s" "http://127.0.0.1:$FPORT/" |
        awk '/Requests\/sec/ {print $2}')"
    kill -TERM "$FLASK_PID" 2>/dev/null && wait "$FLASK_PID" 2>/dev/null || true
    printf '  %-42s %10s req/s   (web-view / again: %s req/s, %.1fx)\n' \
        "reference: Flask table page /" "$flask" "$web" "$(awk -v a="$web" -v b="$flask" 'BEGIN { print a / b }')"
else
    echo "reference: Flask not installed (python3-flask); skipped"
fi
