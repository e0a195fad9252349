#!/usr/bin/env bash
# `spool serve` under wrk with each --flush mode, interleaved, ROUNDS times (A/B of how batches are made durable).
# Usage: Benchmarks/flushmodes.sh [CONNS=64] [SECONDS=5] [ROUNDS=2] [MODES="fsync auto syncfs"] [DIR=/var/tmp/spool-flush]
# Needs a release build (swift build -c release --product spool) and wrk. Nothing is deleted until the end (see
# `fresh` in run.py: deletions slow down inode allocation on ext4 without a journal).
set -euo pipefail
CONNS="${1:-64}"; SECS="${2:-5}"; ROUNDS="${3:-2}"; MODES="${4:-fsync auto syncfs}"; DIR="${5:-/var/tmp/spool-flush}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.build/release/spool"
[ -x "$BIN" ] || { echo "build first: swift build -c release --product spool" >&2; exit 2; }
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
PORT=$((20000 + RANDOM % 20000))
THREADS=$([ "$CONNS" -lt 2 ] && echo 1 || echo 2)
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    D="$DIR/r$round-$mode"
    "$BIN" --dir "$D" serve --listen "127.0.0.1:$PORT" --flush "$mode" >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
    OUT="$(RUN_ID="r$round$mode$RANDOM" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$ROOT/Benchmarks/unique.lua" \
           "http://127.0.0.1:$PORT/json2video/done")"
    BATCHES="$(curl -s "127.0.0.1:$PORT/metrics" | awk '/^spool_commit_batch_size_sum/ {s=$2} /^spool_commit_batch_size_count/ {c=$2} END {if (c) printf "%.1f", s/c}')"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    printf "round %s  %-6s  %8s acked/s  p50 %-8s p99 %-8s mean batch %s\n" "$round" "$mode" \
      "$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")" "$(awk '$1=="50%" {print $2}' <<<"$OUT")" \
      "$(awk '$1=="99%" {print $2}' <<<"$OUT")" "$BATCHES"
  done
done
