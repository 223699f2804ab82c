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
for ((i = 1; i <= n; i++)); do
    printf '"example-sensor" %d %s\n' "$i" "$(value "$i")"
done | awk '{ printf "%s %d %g %g\n", $1, $2, $3, $4 }' >"$work/want"

# across_kill NAME COUNT TORN READY CONSUMER ARGS...: feeds readings 1..n to a fresh
# reliable-publisher while consumer NAME-1 (CONSUMER STREAM ARGS...) stores them; kills it with
# SIGKILL mid-way, appends TORN (a record cut off by the crash) to its file, feeds more while no
# consumer runs (these come back by replay), starts NAME-2 and waits until COUNT (a command
# printing how many readings the file holds) reaches n. A consumer has started when its stdout
# has a line matching READY. Sets killed_at (readings held at the kill).
across_kill() {
    local name="$1" count="$2" torn="$3" ready="$4" publisher_pid consumer_pid feeder stream
    shift 4
    mkfifo "$work/$name-publisher-in"
    "$publisher_bin" example-sensor "$work/$name-outbox" '@tcp://127.0.0.1:0' \
        '@tcp://127.0.0.1:0' <"$work/$name-publisher-in" >"$work/$name-publisher.out" \
        2>"$work/$name-publisher.err" &
    pids+=("$!")
    publisher_pid="$!"
    exec 3>"$work/$name-publisher-in"  # the publisher's stdin stays open until `exec 3>&-`
    wait_for 10 "the publisher to print its endpoints" \
        grep -q '^stream tcp://' "$work/$name-publisher.out"
    stream="$(awk '/^stream / { print $2; exit }' "$work/$name-publisher.out")"
    holds() { [ "$($count)" -ge "$1" ]; }
    start() {  # start N
        "$@" >"$work/$name-$N.out" 2>"$work/$name-$N.err" &
        pids+=("$!")
        consumer_pid="$!"
        wait_for 10 "$name-$N to start" grep -q "$ready" "$work/$name-$N.out"
    }
    N=1 start "$1" "$stream" "${@:2}"
    feed 1 60
    wait_for 15 "$name-1 to store 40 readings" holds 40
    feed 61 100 &
    feeder="$!"
    sleep 0.1
    kill -9 "$consumer_pid"  # mid-way: readings are still arriving
    wait "$consumer_pid" 2>/dev/null || true
    wait "$feeder"
    killed_at="$($count)"
    [ "$killed_at" -lt "$n" ] || fail "$name-1 had all $n readings before it was killed"
    # A record torn by the crash: the restarted consumer must cut it off, not count it.
    printf '%b' "$torn" >>"$work/$name.file"

    feed 101 150
    N=2 start "$1" "$stream" "${@:2}"
    feed 151 "$n"
    exec 3>&-  # end of input: the publisher keeps serving replays
    wait_for 30 "the file of $name to hold $n readings" holds "$n"
    sleep 0.3  # a duplicate written late would show up in the checks after this

    stop "$consumer_pid" "$name-2"
    stop "$publisher_pid" reliable-publisher
    grep -q '^repaired ' "$work/$name-2.out" || fail "$name-2 did not repair the torn record"
    grep -q "^opened $work/$name.file: $killed_at readings" "$work/$name-2.out" ||
        fail "$name-2 did not read back the $killed_at readings $name-1 stored"
}

# check_got NAME: compares "$work/NAME.got" (sensor seq temperature humidity per reading) with the
# readings fed: each seq 1..n exactly once, with its values (compared as numbers).
check_got() {
    sort -k2,2n "$work/$1.got" >"$work/$1.sorted"
    diff "$work/want" "$work/$1.sorted" >"$work/$1.diff" ||
        fail "the file of $1 differs: $(head -n 20 "$work/$1.diff")"
}

# csv-consumer: a CSV file with a header row, its own exactly-once bookkeeping.
csv_rows() { if [ -f "$work/csv.file" ]; then echo $(($(wc -l <"$work/csv.file") - 1)); else echo 0; fi; }
across_kill csv csv_rows '"example-sensor",150,2026-11-' '^publisher ' "$consumer_bin" "$work/csv.file"
grep -q '^replayed example-sensor ' "$work/csv-2.out" || fail "csv-2 received nothing by replay"
if grep -q '^lost ' "$work/csv-2.out"; then fail "csv-2 reported lost readings"; fi
awk -F, 'NR > 1 { printf "%s %d %g %g\n", $1, $2, $4, $5 }' "$work/csv.file" >"$work/csv.got"
check_got csv
echo "examples: $n readings stored exactly once across a SIGKILL of csv-consumer" \
    "($killed_at before it, $((n - killed_at)) after, replayed from the outbox)"

# custom-sink: a file sink of its own behind rill::IngestLoop, one tab-separated line a reading.
sink_lines() { if [ -f "$work/sink.file" ]; then wc -l <"$work/sink.file"; else echo 0; fi; }
across_kill sink sink_lines 'example-sensor\t150\t2026-11-' '^ready: subscribed to ' \
    "$sink_bin" "$work/sink.file"
awk -F'\t' '{ printf "\"%s\" %d %g %g\n", $1, $2, $4, $5 }' "$work/sink.file" >"$work/sink.got"
check_got sink
echo "examples: $n readings stored exactly once across a SIGKILL of custom-sink" \
    "($killed_at before it, $((n - killed_at)) after, replayed from the outbox)"
