#!/usr/bin/env bash
# Installs the built rill into a temporary prefix and builds a consumer against it twice: with
# find_package(rill) and with pkg-config (rill.pc).
set -euo pipefail
build_dir="$1"
src_dir="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >"$work/install.log"
test -f "$work/prefix/include/rill/rill.hpp"
test -f "$work/prefix/lib/pkgconfig/rill.pc" || test -f "$work/prefix/lib/x86_64-linux-gnu/pkgconfig/rill.pc"

cmake -S "$src_dir/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer-build" >/dev/null
"$work/consumer-build/consumer" | grep -q '^consumer ok consumer tcp://127.0.0.1:'

pc_dir="$(dirname "$(find "$work/prefix" -name rill.pc | head -1)")"
flags="$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs rill)"
# shellcheck disable=SC2086
g++ -std=c++20 "$src_dir/consumer/main.cpp" -o "$work/consumer-pc" $flags
"$work/consumer-pc" | grep -q '^consumer ok'
echo "installed rill builds consumers with find_package and pkg-config"
