#!/usr/bin/env bash
# An S3 server on loopback for the SlateDB runs: the moto server from PyPI
# (in a virtual environment of its own) run by .ci/s3-server.py.
#   .ci/s3-server.sh start PORT BUCKET   in the background; prints its pid
#   .ci/s3-server.sh stop PID
#   .ci/s3-server.sh serve ARGS...       in the foreground, as this process
#                                        (the args of s3-server.py; tests use it)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-moto
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]==5.2.1"
fi

case "$1" in
start)
  log=target/ci-moto.log
  "$venv/bin/python" .ci/s3-server.py --port "$2" --bucket "$3" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if grep -qx ready "$log"; then
      echo "$pid"
      exit 0
    fi
    sleep 0.2
  done
  echo "the S3 server did not start; its log:" >&2
  cat "$log" >&2
  exit 1
  ;;
stop)
  kill "$2" 2>/dev/null || true
  ;;
serve)
  shift
  exec "$venv/bin/python" .ci/s3-server.py "$@"
  ;;
esac
