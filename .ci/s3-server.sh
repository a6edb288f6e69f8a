#!/usr/bin/env bash
# An S3 server on loopback for the SlateDB runs: the moto server from PyPI,
# in a virtual environment of its own, with one bucket.
#   .ci/s3-server.sh start PORT BUCKET   (prints the server's pid)
#   .ci/s3-server.sh stop PID
set -euo pipefail
cd "$(dirname "$0")/.."

case "$1" in
start)
  port=$2 bucket=$3
  venv=target/ci-moto
  if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "moto[server]==5.2.1"
  fi
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >target/ci-moto.log 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    # The bucket, created with python3's standard library (no curl needed).
    if "$venv/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=2)' \
      "http://127.0.0.1:$port/$bucket" 2>/dev/null; then
      echo "$pid"
      exit 0
    fi
    sleep 0.2
  done
  echo "the S3 server did not start; its log:" >&2
  cat target/ci-moto.log >&2
  exit 1
  ;;
stop)
  kill "$2" 2>/dev/null || true
  ;;
esac
