#!/usr/bin/env python3
"""Checks deploy/grafana without Grafana (Grafana is not packaged in Debian 12).

1. Structure: the provisioning files parse, panel ids are unique, every panel has a gridPos
   inside the 24-column grid and no two overlap, every target names a data source by a uid the
   provisioning file defines (with its type), SQL targets have rawSql and a format, Prometheus
   targets an expr over metrics docs/operations.md lists (and promtool accepts the PromQL), and
   every variable a query uses is defined.
2. Every SQL query, expanded the way Grafana expands it (below), runs against a PostgreSQL whose
   schema rill's migrations made and whose readings rill::store wrote (tests/grafana/
   grafana_test.cpp), as the read-only role of deploy/grafana/grafana-role.sql, for several time
   ranges and sensor selections; results have the columns Grafana needs for their format, the
   history panels read the level rill::store::Reader::series would (seen in EXPLAIN ANALYZE), and
   their numbers equal an aggregate of the raw readings computed here.

How Grafana turns a panel's rawSql into SQL, from its source (grafana/grafana):
- the browser replaces template variables and the built-in $__interval / $__interval_ms
  (packages/grafana-sql/src/datasource/SqlDatasource.ts, interpolateVariable: a multi-value or
  include-all variable becomes a comma-separated list of quoted literals, ' doubled);
  $__interval_ms is rangeutil.calculateInterval(range, resolution, lowLimit) in
  packages/grafana-data/src/datetime/rangeutil.ts: roundInterval((to - from) / resolution),
  at least the data source's jsonData.timeInterval ('1m' when unset);
- the server (pkg/tsdb/grafana-postgresql-datasource/macros.go, evaluateMacro) expands
  $__timeFrom() and $__timeTo() to the range's ends as quoted RFC 3339 UTC text with Go's
  RFC3339Nano (no trailing zeros in the fraction).
Only what the dashboard uses is implemented; anything else left in a query after expansion is
reported, so a new macro in the dashboard fails this test until it is implemented here.

Exit status 0 when everything holds; otherwise every failure is printed and the status is 1.
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import psycopg2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GRAFANA = os.path.join(ROOT, "deploy", "grafana")

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg, flush=True)


def info(msg):
    print(msg, flush=True)


# --- Grafana's expansion -------------------------------------------------------------------

def round_interval(ms):
    """rangeutil.ts roundInterval: the interval Grafana uses for a range / resolution."""
    ladder = [(10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
              (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
              (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000),
              (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
              (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
              (16200000, 10800000), (32400000, 21600000), (86400000, 43200000),
              (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000)]
    for bound, value in ladder:
        if ms < bound:
            return value
    return 31536000000


def interval_to_ms(text):
    """rangeutil.ts intervalToMs for the units a data source's timeInterval uses."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not m:
        raise ValueError("interval %r" % text)
    unit = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000,
            "y": 31536000000}[m.group(2)]
    return int(m.group(1)) * unit


def calculate_interval_ms(from_ms, to_ms, resolution, low_limit):
    return max(round_interval((to_ms - from_ms) / resolution), interval_to_ms(low_limit))


def go_rfc3339nano(ms):
    """Go's time.Format(time.RFC3339Nano) of a UTC time with millisecond precision."""
    t = dt.datetime.fromtimestamp(ms // 1000, tz=dt.timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ("%03d" % (ms % 1000)).rstrip("0")
    return text + ("." + frac if frac else "") + "Z"


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def interpolate_variable(value, variable):
    """SqlDatasource.interpolateVariable."""
    if isinstance(value, list):
        return ",".join(quote_literal(v) for v in value)
    if variable.get("multi") or variable.get("includeAll"):
        return quote_literal(value)
    return value.replace("'", "''")


def expand(sql, variables, selection, from_ms, to_ms, interval_ms):
    """rawSql as Grafana sends it to PostgreSQL; raises ValueError on anything unknown."""
    def browser(m):
        name = m.group(1) or m.group(2)
        if m.group(3):
            raise ValueError("variable format %r is not implemented here" % m.group(0))
        if name == "__interval_ms":
            return str(interval_ms)
        if name in variables:
            return interpolate_variable(selection[name], variables[name])
        return m.group(0)  # the browser leaves what it does not know to the server
    sql = re.sub(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}", browser, sql)

    def server(m):
        name, args = m.group(1), m.group(2)
        if name == "__timeFrom" and args.strip() == "":
            return "'%s'" % go_rfc3339nano(from_ms)
        if name == "__timeTo" and args.strip() == "":
            return "'%s'" % go_rfc3339nano(to_ms)
        raise ValueError("macro $%s(%s) is not implemented here" % (name, args))
    sql = re.sub(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)", server, sql)
    left = re.findall(r"\$\{?\w+", sql)
    if left:
        raise ValueError("left unexpanded: %s" % ", ".join(sorted(set(left))))
    return sql


# --- structure -----------------------------------------------------------------------------

def documented_metrics():
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        text = f.read()
    names = set()
    for m in re.finditer(r"`(rill_[a-z0-9_{},]+)`", text):
        # rill_stream_{frames,readings}_{sent,received}_total style rows expand to every name
        parts = [[""]]
        for piece in re.split(r"(\{[^}]*\})", m.group(1)):
            if piece.startswith("{"):
                parts.append(piece[1:-1].split(","))
            elif piece:
                parts.append([piece])
        names_here = [""]
        for options in parts:
            names_here = [n + o for n in names_here for o in options]
        names.update(n for n in names_here if re.fullmatch(r"rill_[a-z0-9_]+", n))
    return names


def check_structure(dash, datasources):
    by_uid = {d["uid"]: d for d in datasources}
    ids = [p.get("id") for p in dash["panels"]]
    if len(ids) != len(set(ids)) or None in ids:
        fail("panel ids are not unique: %s" % ids)
    for key in ("uid", "title", "schemaVersion"):
        if not dash.get(key):
            fail("the dashboard has no %s" % key)
    rects = []
    for p in dash["panels"]:
        g = p.get("gridPos")
        if not g or not all(isinstance(g.get(k), int) for k in "xywh"):
            fail("panel %s has no complete gridPos" % p.get("id"))
            continue
        if g["x"] < 0 or g["y"] < 0 or g["w"] <= 0 or g["h"] <= 0 or g["x"] + g["w"] > 24:
            fail("panel %s lies outside the 24-column grid: %s" % (p["id"], g))
        for other_id, o in rects:
            if (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and
                    g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]):
                fail("panels %s and %s overlap" % (other_id, p["id"]))
        rects.append((p["id"], g))
        targets = p.get("targets") or []
        if not targets:
            fail("panel %s has no query" % p["id"])
        for t in targets:
            ref = t.get("datasource") or p.get("datasource") or {}
            ds = by_uid.get(ref.get("uid"))
            if ds is None:
                fail("panel %s target %s: data source %s is not provisioned" %
                     (p["id"], t.get("refId"), ref))
                continue
            if ref.get("type") != ds["type"]:
                fail("panel %s: data source %s has type %s, provisioned as %s" %
                     (p["id"], ref.get("uid"), ref.get("type"), ds["type"]))
            if ds["type"] == "grafana-postgresql-datasource":
                if not t.get("rawSql") or t.get("format") not in ("time_series", "table"):
                    fail("panel %s: a SQL target needs rawSql and format" % p["id"])
            elif ds["type"] == "prometheus":
                if not t.get("expr"):
                    fail("panel %s: a Prometheus target needs expr" % p["id"])
    # The history panels choose their level with one text: a fix in one is a fix in all.
    levels = {t["rawSql"].split(", r AS (")[0] for p in dash["panels"] for t in p["targets"]
              if ", r AS (" in (t.get("rawSql") or "")}
    if len(levels) != 1:
        fail("the history panels choose their level with %d different texts" % len(levels))
    names = {v["name"] for v in dash["templating"]["list"]}
    for v in dash["templating"]["list"]:
        ref = v.get("datasource") or {}
        provisioned = by_uid.get(ref.get("uid"), {})
        if v.get("type") == "query" and provisioned.get("type") != ref.get("type"):
            fail("variable %s: data source %s is not provisioned" % (v["name"], ref))
    builtin = {"__interval", "__interval_ms", "__rate_interval", "__timeFrom", "__timeTo"}
    texts = [t.get("rawSql") or t.get("expr") or "" for p in dash["panels"] for t in p["targets"]]
    texts += [v.get("query") or "" for v in dash["templating"]["list"]]
    for text in texts:
        for m in re.finditer(r"\$\{?(\w+)", text):
            if m.group(1) not in names and m.group(1) not in builtin:
                fail("a query uses $%s, which is neither a variable nor a macro" % m.group(1))


def check_promql(dash):
    documented = documented_metrics()
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"] if t.get("expr")]
    for e in exprs:
        for name in re.findall(r"\brill_[a-z0-9_]+", e):
            if name not in documented:
                fail("PromQL uses %s, which docs/operations.md does not list" % name)
    # promtool checks PromQL in rule files: one recording rule per expression.
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": "grafana:check_%d" % i,
         "expr": e.replace("$__rate_interval", "1m").replace("$__interval", "1m")}
        for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        path = f.name
    try:
        out = subprocess.run(["promtool", "check", "rules", path], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            fail("promtool rejects the dashboard's PromQL: %s%s" % (out.stdout, out.stderr))
    finally:
        os.unlink(path)
    info("PromQL: %d expressions, metrics documented, promtool accepts them" % len(exprs))


# --- running the SQL -----------------------------------------------------------------------

LEVEL_OF_PREFIX = [("readings_6h", 4), ("readings_1h", 3), ("readings_15m", 2), ("readings_1m", 1),
                   ("readings", 0)]
GRANULARITY_US = [0, 60_000_000, 900_000_000, 3_600_000_000, 21_600_000_000]


def level_of(relation):
    for prefix, level in LEVEL_OF_PREFIX:
        if relation.startswith(prefix):
            return level
    return None


def levels_read(cur, sql):
    """The rill tables (by level) a query read rows from: EXPLAIN ANALYZE's executed scans."""
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
    plan = cur.fetchone()[0]
    found = set()

    def walk(node):
        if node.get("Relation Name") and node.get("Actual Loops", 0) > 0:
            level = level_of(node["Relation Name"])
            if level is not None:
                found.add(level)
        for child in node.get("Plans", []):
            walk(child)
    walk(plan[0]["Plan"])
    return found


def run(cur, sql):
    cur.execute(sql)
    cols = [(d.name, d.type_code) for d in cur.description]
    return cols, cur.fetchall()


def type_names(cur, oids):
    cur.execute("SELECT oid, typname FROM pg_type WHERE oid = ANY(%s)", (list(oids),))
    return dict(cur.fetchall())


def check_time_series(cur, what, cols, rows):
    names = [c[0] for c in cols]
    types = type_names(cur, [c[1] for c in cols])
    if "time" not in names:
        fail("%s: no time column (%s)" % (what, names))
        return
    ti = names.index("time")
    if types[cols[ti][1]] not in ("timestamptz", "timestamp", "int8", "float8", "numeric"):
        fail("%s: time column of type %s" % (what, types[cols[ti][1]]))
    values = [i for i, c in enumerate(cols) if i != ti and types[c[1]] in
              ("float4", "float8", "numeric", "int2", "int4", "int8")]
    metrics = [i for i, c in enumerate(cols) if i != ti and types[c[1]] in ("text", "varchar")]
    if not values or len(values) + len(metrics) + 1 != len(cols) or len(metrics) > 1:
        fail("%s: want time, an optional text metric and numeric values, got %s" %
             (what, [(n, types[t]) for n, t in cols]))
    # Grafana turns a long frame (a metric column) into one series per metric and refuses one
    # not sorted ascending by time (data.LongToWide: ErrorSeriesUnsorted).
    times = [r[ti] for r in rows]
    if any(t is None for t in times) or times != sorted(times):
        fail("%s: rows not sorted by time, or a NULL time" % what)
    keys = [(r[ti],) + tuple(r[i] for i in metrics) for r in rows]
    if len(keys) != len(set(keys)):
        fail("%s: two rows for one time and metric" % what)


def bucket_us(ts_us, w_us):
    return ts_us // w_us * w_us


def expected_series(cur, sensors, lo_us, hi_us, w_us):
    """Per (bucket, sensor): avg temperature, avg humidity, readings/s: from raw rows, here."""
    cur.execute("SELECT sensor, (extract(epoch FROM ts) * 1000000)::bigint, temperature::float8, "
                "humidity::float8 FROM readings WHERE sensor = ANY(%s) AND ts >= to_timestamp(%s) "
                "AND ts < to_timestamp(%s)", (sensors, lo_us / 1e6, hi_us / 1e6))
    acc = {}
    for sensor, ts, t, h in cur.fetchall():
        a = acc.setdefault((bucket_us(ts, w_us), sensor), [0, 0.0, 0, 0.0, 0])
        a[0] += 1
        if t is not None:
            a[1] += t
            a[2] += 1
        if h is not None:
            a[3] += h
            a[4] += 1
    out = {}
    for key, (n, ts, tn, hs, hn) in acc.items():
        out[key] = {"temperature": ts / tn if tn else None, "humidity": hs / hn if hn else None,
                    "readings_per_second": n / (w_us / 1e6)}
    return out


def close(a, b):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def ts_us(value):
    return int(round(value.timestamp() * 1_000_000))


def compare(what, column, rows, expected):
    got = {(ts_us(r[0]), r[1]): r[2] for r in rows}
    want = {k: v[column] for k, v in expected.items()}
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        fail("%s: buckets differ from the raw readings (%d vs %d; missing %s, extra %s)" %
             (what, len(got), len(want), missing, extra))
        return
    bad = [(k, got[k], want[k]) for k in sorted(got) if not close(got[k], want[k])]
    if bad:
        fail("%s: %d buckets differ from the raw readings, e.g. %s" % (what, len(bad), bad[:3]))


def sql_panels(dash):
    return [(p, t) for p in dash["panels"] for t in p["targets"] if t.get("rawSql")]


def check_panels(cur, dash, datasource, variables, selection, sensors, now_ms, ranges,
                 expect_level=None):
    low_limit = datasource.get("jsonData", {}).get("timeInterval", "1m")
    for label, seconds, resolution in ranges:
        from_ms, to_ms = now_ms - seconds * 1000, now_ms
        interval_ms = calculate_interval_ms(from_ms, to_ms, resolution, low_limit)
        w_us = interval_ms * 1000
        level = max(i for i, g in enumerate(GRANULARITY_US) if g == 0 or w_us % g == 0)
        if expect_level is not None:
            level = expect_level
        g = GRANULARITY_US[level]
        w_us = w_us if g == 0 else -(-w_us // g) * g
        lo_us = bucket_us(from_ms * 1000, w_us)
        hi_us = -(-to_ms * 1000 // w_us) * w_us
        expected = expected_series(cur, sensors, lo_us, hi_us, w_us)
        for p, t in sql_panels(dash):
            what = "panel %d (%s), %s, %s" % (p["id"], p["title"], label, selection["sensor"])
            try:
                sql = expand(t["rawSql"], variables, selection, from_ms, to_ms, interval_ms)
            except ValueError as e:
                fail("%s: %s" % (what, e))
                continue
            try:
                cols, rows = run(cur, sql)
            except psycopg2.Error as e:
                cur.connection.rollback()
                fail("%s: PostgreSQL refused it: %s" % (what, str(e).strip()))
                continue
            names = [c[0] for c in cols]
            if t["format"] == "time_series":
                check_time_series(cur, what, cols, rows)
                column = names[-1]
                if column in ("temperature", "humidity", "readings_per_second"):
                    compare(what, column, rows, expected)
                    read = levels_read(cur, sql)
                    if read != {level}:
                        fail("%s: read level(s) %s, want %s (interval %d ms)" %
                             (what, sorted(read), level, interval_ms))
            else:
                check_table(cur, what, p, names, rows, sensors)
            info("ok %s: %d rows, interval %d ms" % (what, len(rows), interval_ms))


def check_table(cur, what, panel, names, rows, sensors):
    # Columns the panel's options and overrides name must be there.
    wanted = [o["matcher"]["options"] for o in panel.get("fieldConfig", {}).get("overrides", [])
              if o["matcher"]["id"] == "byName"]
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields.startswith("/^") and fields.endswith("$/"):
        wanted.append(fields[2:-2])
    for name in wanted:
        if name not in names:
            fail("%s: the panel shows column %s, the query returns %s" % (what, name, names))
    if "sensor" in names and "time" in names:
        got = {r[names.index("sensor")]: r[names.index("time")] for r in rows}
        cur.execute("SELECT sensor, max(ts) FROM readings WHERE sensor = ANY(%s) GROUP BY 1",
                    (sensors,))
        want = dict(cur.fetchall())
        if got != want:
            fail("%s: newest readings %s, want %s" % (what, got, want))
        if "age_seconds" in names and any(r[names.index("age_seconds")] < 0 for r in rows):
            fail("%s: a negative age" % what)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsn", required=True, help="libpq conninfo of the read-only role")
    ap.add_argument("--owner-dsn", required=True, help="libpq conninfo of the tables' owner")
    ap.add_argument("--now-ms", type=int, required=True, help="the dashboard's now")
    ap.add_argument("--sensor", action="append", required=True,
                    help="the sensors stored (each once)")
    args = ap.parse_args()

    with open(os.path.join(GRAFANA, "dashboards", "rill.json")) as f:
        dash = json.load(f)
    with open(os.path.join(GRAFANA, "provisioning", "datasources", "rill.yml")) as f:
        datasources = yaml.safe_load(f)["datasources"]
    with open(os.path.join(GRAFANA, "provisioning", "dashboards", "rill.yml")) as f:
        providers = yaml.safe_load(f)["providers"]
    if (not providers or providers[0].get("type") != "file"
            or not providers[0]["options"].get("path")):
        fail("the dashboard provider is not a file provider with a path")
    check_structure(dash, datasources)
    check_promql(dash)
    pg = next(d for d in datasources if d["type"] == "grafana-postgresql-datasource")
    if "${RILL_PG_PASSWORD}" not in json.dumps(pg.get("secureJsonData", {})):
        fail("the PostgreSQL password is not taken from the environment")

    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SHOW default_transaction_read_only")
    if cur.fetchone()[0] != "on":
        fail("the Grafana role's transactions are not read only")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    sensor_var = variables["sensor"]
    options = [r[0] for r in run(cur, expand(sensor_var["query"], variables, {}, 0, 0, 0))[1]]
    if sorted(options) != sorted(args.sensor):
        fail("the sensor variable offers %s, want %s" % (options, sorted(args.sensor)))

    day, hour = 86400, 3600
    # 10 days in 1000 px: a 15-minute interval, read from readings_15m.
    ranges = [("1h", hour, 1000), ("7d", 7 * day, 1000), ("10d", 10 * day, 1000),
              ("90d", 90 * day, 1000),
              ("1y", 365 * day, 1000), ("1y in 300 px", 365 * day, 300)]
    # "All" without a custom allValue: every option, as a list.
    for selection in (options, [sorted(args.sensor)[-1]]):
        check_panels(cur, dash, pg, variables, {"sensor": selection}, selection, args.now_ms,
                     ranges)

    # Retention dropped the oldest day of raw readings: its last hour is drawn from the 1-minute
    # rollups (the 5 s interval rounded up to 1 min), as Reader::series does, and still equals
    # the raw readings (computed before the drop). The readings start 72 h before now, so that
    # hour always holds some.
    owner = psycopg2.connect(args.owner_dsn)
    owner.autocommit = True
    ocur = owner.cursor()
    ocur.execute("SELECT part::text, extract(epoch FROM hi)::bigint FROM "
                 "rill_partitions('readings') ORDER BY lo LIMIT 1")
    oldest, oldest_hi = ocur.fetchone()
    hour_end_ms = oldest_hi * 1000
    snapshot = {}
    for sensor in options:
        snapshot[sensor] = expected_series(owner.cursor(), [sensor], (oldest_hi - hour) * 10**6,
                                           oldest_hi * 10**6, 60_000_000)
    if not all(snapshot.values()):
        fail("no raw readings in the oldest day %s: the retention case proves nothing" % oldest)
    ocur.execute("DROP TABLE %s" % oldest)
    for p, t in sql_panels(dash):
        if t["format"] != "time_series":
            continue
        what = "panel %d (%s) after dropping %s" % (p["id"], p["title"], oldest)
        sql = expand(t["rawSql"], variables, {"sensor": options},
                     hour_end_ms - hour * 1000, hour_end_ms,
                     calculate_interval_ms(hour_end_ms - hour * 1000, hour_end_ms, 1000, "1s"))
        cols, rows = run(cur, sql)
        check_time_series(cur, what, cols, rows)
        column = cols[-1][0]
        merged = {k: v for s in snapshot.values() for k, v in s.items()}
        compare(what, column, rows, merged)
        read = levels_read(cur, sql)
        if read != {1}:
            fail("%s: read level(s) %s, want 1 (readings_1m)" % (what, sorted(read)))
        info("ok %s: %d rows from readings_1m" % (what, len(rows)))

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all Grafana checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
