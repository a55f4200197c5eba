"""Bug (9): a client that half-closes must still get every reply it asked for.

A client may write its commands, shutdown(SHUT_WR), and only then read the
replies.  CPython's channel closed as soon as it read the end of input, dropping
the replies it had not been able to send yet.  Here they are written out first.
"""

import socket
import threading
import time

import pytest

import smtpd_compat
from stdlib_modules import stdlib_modules

WAIT_SECONDS = 20
NOOPS = 20000  # 160,000 bytes of replies: far more than small buffers hold
SMALL_BUFFER = 4096


def _cpython_smtpd():
    found = stdlib_modules()
    return None if found is None else found["smtpd"]


@pytest.fixture(
    params=[
        pytest.param("ours"),
        pytest.param(
            "cpython",
            marks=[
                pytest.mark.skipif(_cpython_smtpd() is None, reason="no smtpd in Python >= 3.12"),
                pytest.mark.xfail(
                    strict=True,
                    reason="CPython closes at the end of input, dropping the replies still queued",
                ),
            ],
        ),
    ]
)
def smtpd_module(request):
    return smtpd_compat if request.param == "ours" else _cpython_smtpd()


@pytest.fixture
def small_buffer_server(smtpd_module):
    """A sink server whose connections have small send buffers, so that replies
    wait in the channel's queue; run by its own asyncore in a thread."""

    input_ended = threading.Event()

    class Channel(smtpd_module.SMTPChannel):
        def recv(self, buffer_size):
            data = super().recv(buffer_size)
            if not data:
                input_ended.set()
            return data

    class Sink(smtpd_module.SMTPServer):
        channel_class = Channel

        def process_message(self, *args, **kwargs):
            return None

    channels = {}
    server = Sink(("127.0.0.1", 0), None, map=channels)
    # Accepted sockets start with the listening socket's buffer sizes.
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    stop = threading.Event()

    def serve():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            smtpd_module.asyncore.loop(timeout=0.02, map=channels, count=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname(), input_ended
    finally:
        stop.set()
        thread.join(WAIT_SECONDS)
        smtpd_module.asyncore.close_all(map=channels)


def read_until_end(sock):
    sock.settimeout(WAIT_SECONDS)
    received = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not data:
            break
        received.append(data)
    return b"".join(received)


def test_replies_still_queued_at_half_close_are_all_delivered(small_buffer_server):
    address, input_ended = small_buffer_server
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    client.connect(address)
    with client:
        client.settimeout(WAIT_SECONDS)
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            greeting += client.recv(1)
        assert greeting.startswith(b"220 ")
        client.sendall(b"NOOP\r\n" * NOOPS)
        client.shutdown(socket.SHUT_WR)
        # Read nothing before the server has seen the end of input: by then most
        # replies cannot have been sent, and wait in the channel's queue.
        assert input_ended.wait(WAIT_SECONDS)
        assert read_until_end(client) == b"250 OK\r\n" * NOOPS
