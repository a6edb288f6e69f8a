"""An S3 server on loopback for the SlateDB tests: moto's, from PyPI.

    python s3-server.py --port PORT [--bucket NAME] [--state FOLDER]

Prints `ready` once it takes requests and NAME exists, then serves until it
is killed.

With --state it keeps what it was sent in FOLDER and takes it back when
started again, so that a test can stop the server mid-write and restart it.
moto keeps objects in memory only; its request recorder appends every request
to a file, and this replays that file at start.
"""

import argparse
import os
import sys
import threading
import urllib.request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket")
    parser.add_argument("--state")
    args = parser.parse_args()

    recording = None
    if args.state:
        os.makedirs(args.state, exist_ok=True)
        recording = os.path.join(args.state, "requests.jsonl")
        drop_torn_tail(recording)
        # Read by moto's recorder when moto is first imported, just below.
        os.environ["MOTO_ENABLE_RECORDING"] = "True"
        os.environ["MOTO_RECORDER_FILEPATH"] = recording

    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    if recording:
        record_one_request_at_a_time(type(recorder))
    server = ThreadedMotoServer("127.0.0.1", args.port, verbose=False)
    server.start()
    base = f"http://127.0.0.1:{args.port}"
    if recording and os.path.exists(recording):
        recorder.replay_recording(target_host=base)
    if args.bucket:
        create_bucket(f"{base}/{args.bucket}")
    print("ready", flush=True)
    threading.Event().wait()


def drop_torn_tail(recording):
    """A server killed while it recorded a request leaves a last line
    without its newline. That request was never handled (moto records a
    request before it handles it), so no client saw it succeed: drop it."""
    if not os.path.exists(recording):
        return
    with open(recording, "rb+") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def record_one_request_at_a_time(recorder_class):
    """moto's recorder writes a request and its newline in two writes, so
    requests handled at the same time could interleave in the file; a lock
    keeps each line whole."""
    record = recorder_class._record_request
    lock = threading.Lock()

    def record_whole(self, request, body=None):
        with lock:
            record(self, request, body)

    recorder_class._record_request = record_whole


def create_bucket(url):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=10)
    except urllib.error.HTTPError as error:
        if error.code != 409:  # already there, from the replayed requests
            sys.exit(f"could not create the bucket at {url}: {error}")


if __name__ == "__main__":
    main()
