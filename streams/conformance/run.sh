#!/usr/bin/env bash
# Runs the Durable Streams conformance suite (pinned in package.json)
# against skyshelve-streams on loopback, started here on a fresh store.
#
#   streams/conformance/run.sh            # one server process
#   streams/conformance/run.sh 3          # three processes sharing the port and the store
#   STREAMS_STORE=s3://bucket/prefix streams/conformance/run.sh
#                                         # a writer node on object storage (feature slatedb;
#                                         # the AWS_* variables name the S3 server)
#   STREAMS_STORE=s3://bucket/prefix streams/conformance/run.sh reader
#                                         # a reader node of it, which forwards writes to the writer
#
# Needs Node 20+ with npm; installs the suite on first use.
set -euo pipefail
cd "$(dirname "$0")"
workers="${1:-1}"
port="${CONFORMANCE_PORT:-}"

[ -d node_modules/@durable-streams/server-conformance-tests ] && [ -d node_modules/@durable-streams/server ] \
  || npm install --no-audit --no-fund --silent
store=$(mktemp -d)
servers=()
trap 'kill "${servers[@]}" 2>/dev/null; wait "${servers[@]}" 2>/dev/null; rm -rf "$store"' EXIT
server="../../target/release/skyshelve-streams"

# Starts a server with the given arguments on port $1 and waits until it listens.
start() {
  local on="$1"
  shift
  RUST_LOG="${RUST_LOG:-warn}" "$server" serve "$@" --port "$on" --long-poll-timeout 3 --cors-origin "*" &
  servers+=($!)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$on") 2>/dev/null; then return; fi
    kill -0 "${servers[-1]}" 2>/dev/null || { echo "the server on port $on ended before it listened" >&2; exit 1; }
    sleep 0.1
  done
}

# A port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

[ -n "$port" ] || port=$(free_port)
timeout=()
if [ -z "${STREAMS_STORE:-}" ]; then
  cargo build --quiet --release -p skyshelve-streams
  start "$port" --dir "$store/streams" --workers "$workers"
  what="$workers server process(es)"
else
  cargo build --quiet --release -p skyshelve-streams --features slatedb
  if [ "$workers" = reader ]; then
    writer_port=$(free_port)
    start "$writer_port" --store "$STREAMS_STORE" --dir "$store/writer"
    # A 10 ms poll, as a reader serving clients that write through it would
    # run; every write waits for the replica to show it, so the suite's
    # property tests (hundreds of writes each) need more than vitest's 5 s.
    start "$port" --store "$STREAMS_STORE" --dir "$store/reader" --read-only \
      --writer "http://127.0.0.1:$writer_port" --poll-interval-ms 10
    what="a reader node of $STREAMS_STORE (writes forwarded to a writer node)"
    timeout=(--testTimeout=30000)
  else
    start "$port" --store "$STREAMS_STORE" --dir "$store/node"
    what="a writer node on $STREAMS_STORE"
  fi
fi
echo "conformance suite against $what on port $port"
CONFORMANCE_URL="http://127.0.0.1:$port" npx vitest run --reporter=dot "${timeout[@]}"
