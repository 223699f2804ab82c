#!/usr/bin/env bash
# Installs the built rill into a temporary prefix and builds a consumer against it twice: with
# find_package(rill) and with pkg-config (rill.pc). Then builds examples/ against the same
# prefix, as a project outside the tree would, and runs them together: reliable-publisher is
# fed N readings, csv-consumer is killed with SIGKILL mid-way (its CSV file left with a torn
# last row) and restarted while readings keep coming, and the CSV file must hold each seq
# 1..N exactly once with the values fed in. The same again with custom-sink, which stores into
# a file sink of its own through rill::IngestLoop. RILL_KEEP_WORK=1 keeps the temporary directory.
set -euo pipefail
build_dir="$1"
src_dir="$(cd "$(dirname "$0")" && pwd)"
examples_src="$(cd "$src_dir/../../examples" && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -n "${RILL_KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >"$work/install.log"
test -f "$work/prefix/include/rill/rill.hpp"
test -f "$work/prefix/lib/pkgconfig/rill.pc" || test -f "$work/prefix/lib/x86_64-linux-gnu/pkgconfig/rill.pc"

cmake -S "$src_dir/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer-build" >/dev/null
"$work/consumer-build/consumer" | grep -q '^consumer ok consumer tcp://127.0.0.1:'

pc_dir="$(dirname "$(find "$work/prefix" -name rill.pc | head -1)")"
flags="$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs rill)"
# shellcheck disable=SC2086
g++ "$src_dir/consumer/main.cpp" -o "$work/consumer-pc" $flags
"$work/consumer-pc" | grep -q '^consumer ok'
echo "installed rill builds consumers with find_package and pkg-config"

# --- examples/: built against the installed package with rill's warnings as errors ------------

warnings="-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Werror"
cmake -S "$examples_src" -B "$work/examples-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DCMAKE_CXX_FLAGS="$warnings" >/dev/null
cmake --build "$work/examples-build" -j2 >/dev/null
publisher_bin="$work/examples-build/reliable-publisher/reliable-publisher"
consumer_bin="$work/examples-build/csv-consumer/csv-consumer"
sink_bin="$work/examples-build/custom-sink/custom-sink"

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$work"/*.out "$work"/*.err; do
        [ -f "$f" ] || continue
        echo "--- ${f##*/} (last 20 lines)" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 50 ms until it succeeds.
wait_for() {
    local secs="$1" what="$2"
    local deadline=$((SECONDS + secs))
    shift 2
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "waited ${secs} s for $what"
        sleep 0.05
    done
}

gone() { ! kill -0 "$1" 2>/dev/null; }

# stop PID NAME: SIGTERM, then waits up to 10 s for a clean exit (status 0).
stop() {
    local pid="$1" name="$2" rc=0
    kill -TERM "$pid"
    wait_for 10 "$name to exit after SIGTERM" gone "$pid"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name exited with status $rc after SIGTERM"
}

csv="$work/readings.csv"
rows() { if [ -f "$csv" ]; then echo $(($(wc -l <"$csv") - 1)); else echo 0; fi; }
has_rows() { [ "$(rows)" -ge "$1" ]; }

n=200
# Reading i: temperature i/4 - 10, humidity i mod 100 + 0.5 (exact in a float).
value() { printf '%s %s\n' "$(awk -v i="$1" 'BEGIN { print i / 4 - 10 }')" "$(($1 % 100)).5"; }
feed() {  # feed FIRST LAST: one reading every 5 ms
    local i
    for ((i = $1; i <= $2; i++)); do
        value "$i" >&3
        sleep 0.005
    done
}

mkfifo "$work/publisher-in"
"$publisher_bin" example-sensor "$work/outbox" '@tcp://127.0.0.1:0' '@tcp://127.0.0.1:0' \
    <"$work/publisher-in" >"$work/publisher.out" 2>"$work/publisher.err" &
pids+=("$!")
publisher_pid="$!"
exec 3>"$work/publisher-in"  # the publisher's stdin stays open until `exec 3>&-`
wait_for 10 "the publisher to print its endpoints" grep -q '^stream tcp://' "$work/publisher.out"
stream="$(awk '/^stream / { print $2; exit }' "$work/publisher.out")"

start_consumer() {  # start_consumer NAME
    "$consumer_bin" "$stream" "$csv" >"$work/$1.out" 2>"$work/$1.err" &
    pids+=("$!")
    consumer_pid="$!"
    wait_for 10 "$1 to see the publisher's heartbeat" grep -q '^publisher ' "$work/$1.out"
}

start_consumer consumer-1
feed 1 60
wait_for 15 "consumer-1 to write 40 rows" has_rows 40
feed 61 100 &
feeder="$!"
sleep 0.1
kill -9 "$consumer_pid"  # mid-way: readings are still arriving
wait "$consumer_pid" 2>/dev/null || true
wait "$feeder"
killed_at="$(rows)"
[ "$killed_at" -lt "$n" ] || fail "consumer-1 had all $n rows before it was killed"
# A row torn by the crash: the restarted consumer must cut it off, not count it.
printf '"example-sensor",150,2026-11-' >>"$csv"

feed 101 150  # while no consumer runs: these come back by replay
start_consumer consumer-2
feed 151 "$n"
exec 3>&-  # end of input: the publisher keeps serving replays
wait_for 30 "the CSV file to hold $n rows" has_rows "$n"
sleep 0.3  # a duplicate written late would show up in the check below

stop "$consumer_pid" consumer-2
stop "$publisher_pid" reliable-publisher

grep -q '^repaired ' "$work/consumer-2.out" || fail "consumer-2 did not repair the torn row"
grep -q '^replayed example-sensor ' "$work/consumer-2.out" ||
    fail "consumer-2 received nothing by replay"
if grep -q '^lost ' "$work/consumer-2.out"; then fail "consumer-2 reported lost readings"; fi
grep -q "^opened $csv: $killed_at readings" "$work/consumer-2.out" ||
    fail "consumer-2 did not read back the $killed_at rows consumer-1 wrote"

# Each seq 1..n exactly once, with the values fed in (compared as numbers).
awk -F, 'NR > 1 { printf "%s %d %g %g\n", $1, $2, $4, $5 }' "$csv" | sort -k2,2n >"$work/got"
for ((i = 1; i <= n; i++)); do
    printf '"example-sensor" %d %s\n' "$i" "$(value "$i")"
done | awk '{ printf "%s %d %g %g\n", $1, $2, $3, $4 }' >"$work/want"
diff "$work/want" "$work/got" >"$work/diff" || fail "the CSV file differs: $(head -n 20 "$work/diff")"
echo "examples: $n readings stored exactly once across a SIGKILL of csv-consumer" \
    "($killed_at before it, $((n - killed_at)) after, replayed from the outbox)"

# --- custom-sink: the same through IngestLoop into a file sink of its own ---------------------

log="$work/readings.log"
lines() { if [ -f "$log" ]; then wc -l <"$log"; else echo 0; fi; }
has_lines() { [ "$(lines)" -ge "$1" ]; }

mkfifo "$work/publisher2-in"
"$publisher_bin" example-sensor "$work/outbox2" '@tcp://127.0.0.1:0' '@tcp://127.0.0.1:0' \
    <"$work/publisher2-in" >"$work/publisher2.out" 2>"$work/publisher2.err" &
pids+=("$!")
publisher_pid="$!"
exec 3>"$work/publisher2-in"
wait_for 10 "the publisher to print its endpoints" grep -q '^stream tcp://' "$work/publisher2.out"
stream="$(awk '/^stream / { print $2; exit }' "$work/publisher2.out")"

start_sink() {  # start_sink NAME
    "$sink_bin" "$stream" "$log" >"$work/$1.out" 2>"$work/$1.err" &
    pids+=("$!")
    sink_pid="$!"
    wait_for 10 "$1 to subscribe" grep -q '^ready: subscribed to ' "$work/$1.out"
}

start_sink sink-1
feed 1 60
wait_for 15 "sink-1 to write 40 lines" has_lines 40
feed 61 100 &
feeder="$!"
sleep 0.1
kill -9 "$sink_pid"  # mid-way: readings are still arriving
wait "$sink_pid" 2>/dev/null || true
wait "$feeder"
killed_at="$(lines)"
[ "$killed_at" -lt "$n" ] || fail "sink-1 had all $n lines before it was killed"
printf 'example-sensor\t150\t2026-11-' >>"$log"  # a line torn by the crash

feed 101 150  # while no sink runs: these come back by replay
start_sink sink-2
feed 151 "$n"
exec 3>&-
wait_for 30 "the file to hold $n lines" has_lines "$n"
sleep 0.3  # a duplicate written late would show up in the check below

stop "$sink_pid" custom-sink
stop "$publisher_pid" reliable-publisher

grep -q '^repaired ' "$work/sink-2.out" || fail "custom-sink did not repair the torn line"
grep -q "^opened $log: $killed_at readings" "$work/sink-2.out" ||
    fail "custom-sink did not read back the $killed_at lines written before the kill"
awk -F'\t' '{ printf "\"%s\" %d %g %g\n", $1, $2, $4, $5 }' "$log" | sort -k2,2n >"$work/got2"
diff "$work/want" "$work/got2" >"$work/diff2" || fail "the file differs: $(head -n 20 "$work/diff2")"
echo "examples: $n readings stored exactly once across a SIGKILL of custom-sink" \
    "($killed_at before it, $((n - killed_at)) after)"
