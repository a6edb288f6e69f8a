#!/usr/bin/env bash
# Runs the Durable Streams conformance suite (pinned in package.json)
# against skyshelve-streams on loopback, started here on a fresh store.
#
#   streams/conformance/run.sh            # one server process
#   streams/conformance/run.sh 3          # three processes sharing the port and the store
#
# Needs Node 20+ with npm; installs the suite on first use.
set -euo pipefail
cd "$(dirname "$0")"
workers="${1:-1}"
port="${CONFORMANCE_PORT:-$((20000 + RANDOM % 20000))}"

[ -d node_modules/@durable-streams/server-conformance-tests ] && [ -d node_modules/@durable-streams/server ] \
  || npm install --no-audit --no-fund --silent
cargo build --quiet --release -p skyshelve-streams
store=$(mktemp -d)
RUST_LOG="${RUST_LOG:-warn}" ../../target/release/skyshelve-streams serve --dir "$store/streams" --port "$port" \
  --workers "$workers" --long-poll-timeout 3 --cors-origin "*" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$store"' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
echo "conformance suite against $workers server process(es) on port $port"
CONFORMANCE_URL="http://127.0.0.1:$port" npx vitest run --reporter=dot
