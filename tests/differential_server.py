"""One SMTP server for the differential test (tests/test_differential.py).

    python differential_server.py --impl {compat,cpython}
        [--data-size-limit N|none] [--decode-data] [--smtputf8]

``--impl compat`` serves ``smtpd_compat`` (found on PYTHONPATH), ``--impl cpython``
serves CPython's own ``smtpd`` (Python <= 3.11 only). The server binds 127.0.0.1,
port 0, and writes to stdout:

- first line: the port it listens on;
- then one JSON object per line, flushed at once:
  ``{"event": "connect", "port": P, "fqdn": ...}`` when a connection is accepted
  (after the channel has been built, so after its 220 greeting was queued),
  ``{"event": "message", "port": P, "peer": ..., "mailfrom": ..., "rcpttos": ...,
  "data": ..., "kwargs": ...}`` for each ``process_message`` call, written before
  ``process_message`` returns (so before the server replies to the message), and
  ``{"event": "error", "port": P, "exception": "TypeName"}`` when a channel's
  ``handle_error`` runs (an uncaught exception is about to close that connection),
  ``{"event": "read", "port": P, "bytes": N}`` after each ``recv`` of a channel
  (this lets the test wait until the server has read a write before sending the
  next: a record, not a behaviour, and never compared), and
  ``{"event": "closed", "port": P}`` when a channel closes.

Values are written with their types kept (see ``encode``), so ``b"x"`` and ``"x"``
or a list and a tuple never compare equal. Everything else the server prints
(asyncore's own reports of uncaught exceptions go to stdout) is sent to stderr.

The process exits when its stdin reaches end of file (the test closes it, or dies)
or after ``--max-seconds``.
"""

import argparse
import json
import os
import sys
import threading
import warnings

RECORDS = sys.stdout
# asyncore reports uncaught exceptions with print(): keep them out of the records.
sys.stdout = sys.stderr


def encode(value):
    """A JSON-able form of ``value`` that keeps its type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(item) for item in value]}
    if isinstance(value, dict):
        return {type(value).__name__: [[encode(k), encode(v)] for k, v in value.items()]}
    return {"repr": "%s %r" % (type(value).__name__, value)}


def emit(record):
    RECORDS.write(json.dumps(record, sort_keys=True) + "\n")
    RECORDS.flush()


def peer_port(peer):
    try:
        return int(peer[1])
    except Exception:
        return None


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=("compat", "cpython"), required=True)
    parser.add_argument("--data-size-limit", default=None)
    parser.add_argument("--decode-data", action="store_true")
    parser.add_argument("--smtputf8", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=3 * 3600)
    return parser.parse_args(argv)


def load(impl):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if impl == "compat":
            import smtpd_compat as smtpd
            from smtpd_compat import asyncore
        else:
            import asyncore
            import smtpd
    return smtpd, asyncore


def exit_with_parent(max_seconds):
    """Daemon thread: end the process at stdin EOF or after ``max_seconds``."""

    def watch():
        import select
        import time

        fd = sys.stdin.fileno()
        deadline = time.monotonic() + max_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(5.0, remaining))
            if ready and not os.read(fd, 4096):
                break
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    args = parse_arguments(argv)
    smtpd, asyncore = load(args.impl)

    class RecordingChannel(smtpd.SMTPChannel):
        def __init__(self, server, conn, addr, *rest, **kwargs):
            self.differential_port = peer_port(addr)
            super().__init__(server, conn, addr, *rest, **kwargs)
            emit(
                {
                    "event": "connect",
                    "port": self.differential_port,
                    "fqdn": getattr(self, "fqdn", None),
                }
            )

        def recv(self, buffer_size):
            data = super().recv(buffer_size)
            emit({"event": "read", "port": self.differential_port, "bytes": len(data)})
            return data

        def close(self):
            if not getattr(self, "differential_closed", False):
                self.differential_closed = True
                emit({"event": "closed", "port": getattr(self, "differential_port", None)})
            super().close()

        def handle_error(self):
            failure = sys.exc_info()[1]
            emit(
                {
                    "event": "error",
                    "port": getattr(self, "differential_port", None),
                    "exception": type(failure).__name__,
                }
            )
            super().handle_error()

    class RecordingServer(smtpd.SMTPServer):
        channel_class = RecordingChannel

        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            emit(
                {
                    "event": "message",
                    "port": peer_port(peer),
                    "peer": encode(peer),
                    "mailfrom": encode(mailfrom),
                    "rcpttos": encode(rcpttos),
                    "data": encode(data),
                    "kwargs": encode(kwargs),
                }
            )
            return None

    options = {"decode_data": args.decode_data, "enable_SMTPUTF8": args.smtputf8}
    if args.data_size_limit is not None:
        limit = args.data_size_limit
        options["data_size_limit"] = None if limit.lower() == "none" else int(limit)
    server = RecordingServer(("127.0.0.1", 0), None, **options)
    RECORDS.write("%d\n" % server.socket.getsockname()[1])
    RECORDS.flush()
    exit_with_parent(args.max_seconds)
    asyncore.loop(timeout=1.0)


if __name__ == "__main__":
    main()
