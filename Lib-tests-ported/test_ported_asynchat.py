"""pytest port of CPython 3.11's Lib/test/test_asynchat.py.

The original TestAsynchat runs twice, as itself (select) and as
TestAsynchat_WithPoll; here those tests take a ``use_poll`` parameter.
Each conversation goes through a real loopback TCP connection to a small
echo peer running in a thread.  CASES.rst maps each original test to the
function that ports it.
"""

import errno
import socket
import sys
import threading
import time
import unittest.mock

import pytest

from ported_support import LOOPBACK_V4, join_or_fail, load_implementation

smtpd, asyncore, asynchat = load_implementation()


@pytest.fixture(autouse=True)
def empty_socket_map():
    """Each test starts and ends with nothing left in asyncore's global map."""
    asyncore.close_all(ignore_all=True)
    yield
    asyncore.close_all(ignore_all=True)


QUIT = b"QUIT\n"
TEXT = b"hello world, I'm not dead yet!\n"
TWO_LINES = b"hello world\nI'm not dead yet!\n"
PEER_TIMEOUT = 10.0


class EchoPeer(threading.Thread):
    """Reads until QUIT, then sends back everything before it, chunk by chunk.

    The listening socket is ready when the constructor returns, so a client
    may connect at once.  With ``hold_echo`` the echo waits until
    ``release_echo`` is set.
    """

    def __init__(self, chunk_size=1, hold_echo=False):
        super().__init__(name="echo-peer", daemon=True)
        self.chunk_size = chunk_size
        self.release_echo = threading.Event()
        if not hold_echo:
            self.release_echo.set()
        self.received = b""
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.settimeout(PEER_TIMEOUT)
        self.listener.bind((LOOPBACK_V4, 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]

    def run(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            self.listener.close()
            return
        with conn, self.listener:
            conn.settimeout(PEER_TIMEOUT)
            incoming = b""
            while QUIT not in incoming:
                byte = conn.recv(1)
                if not byte:
                    break
                incoming += byte
            self.received = incoming.replace(QUIT, b"")
            self.release_echo.wait(PEER_TIMEOUT)
            pending = self.received
            try:
                while pending:
                    sent = conn.send(pending[: self.chunk_size])
                    pending = pending[sent:]
                    # Small pauses make the client see many short reads.
                    time.sleep(0.001)
            except OSError:
                # Expected when the client has already closed (close_when_done).
                pass


class Collector(asynchat.async_chat):
    """Client that records each terminated chunk it receives in ``lines``.

    Data not yet followed by a terminator waits in ``pieces``.
    """

    def __init__(self, terminator, port):
        asynchat.async_chat.__init__(self)
        self.lines = []
        self.pieces = []
        self.set_terminator(terminator)
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.connect((LOOPBACK_V4, port))

    @property
    def unterminated(self):
        return b"".join(self.pieces)

    def collect_incoming_data(self, data):
        self.pieces.append(data)

    def found_terminator(self):
        self.lines.append(self.unterminated)
        del self.pieces[:]

    def handle_connect(self):
        """Nothing to do: the data is already queued with push()."""

    if sys.platform == "darwin":

        def handle_expt(self):
            """poll() reports POLLHUP when these conversations end on macOS."""


@pytest.fixture
def converse():
    """Factory: start an EchoPeer, connect a Collector to it.

    Returns (peer, client, finish); finish() runs the asyncore loop (bounded
    to 300 passes of 10 ms) and then waits for the peer to finish.
    """
    peers = []

    def start(terminator, use_poll, **peer_options):
        peer = EchoPeer(**peer_options)
        peer.start()
        peers.append(peer)
        client = Collector(terminator, peer.port)

        def finish(before_join=None):
            asyncore.loop(use_poll=use_poll, count=300, timeout=0.01)
            if before_join is not None:
                before_join()
            join_or_fail(peer)

        return peer, client, finish

    yield start
    for peer in peers:
        peer.release_echo.set()
        join_or_fail(peer)
    asyncore.close_all()


poll_or_select = pytest.mark.parametrize(
    "use_poll", [pytest.param(False, id="select"), pytest.param(True, id="poll")]
)

# The line terminator tests echo in 1, 2 and 3 byte chunks, so every branch
# of async_chat.handle_read sees a terminator split across reads.
echo_chunks = pytest.mark.parametrize(
    "chunk_size", [pytest.param(n, id="chunk%d" % n) for n in (1, 2, 3)]
)


def _two_lines_with(converse, terminator, use_poll, chunk_size):
    peer, client, finish = converse(terminator, use_poll, chunk_size=chunk_size)
    for piece in (b"hello ", b"world" + terminator, b"I'm not dead yet!" + terminator, QUIT):
        client.push(piece)
    finish()
    return client.lines


@echo_chunks
@poll_or_select
def test_single_byte_terminator_splits_lines(converse, use_poll, chunk_size):
    assert _two_lines_with(converse, b"\n", use_poll, chunk_size) == [
        b"hello world",
        b"I'm not dead yet!",
    ]


@echo_chunks
@poll_or_select
def test_two_byte_terminator_splits_lines(converse, use_poll, chunk_size):
    assert _two_lines_with(converse, b"\r\n", use_poll, chunk_size) == [
        b"hello world",
        b"I'm not dead yet!",
    ]


@echo_chunks
@poll_or_select
def test_three_byte_terminator_splits_lines(converse, use_poll, chunk_size):
    assert _two_lines_with(converse, b"qqq", use_poll, chunk_size) == [
        b"hello world",
        b"I'm not dead yet!",
    ]


def _first_bytes_by_count(converse, count, use_poll):
    peer, client, finish = converse(count, use_poll)
    client.push(TEXT)
    client.push(QUIT)
    finish()
    return client.lines


@poll_or_select
def test_integer_terminator_of_one_collects_one_byte(converse, use_poll):
    # The terminator's type is checked in handle_read; a small int must work.
    assert _first_bytes_by_count(converse, 1, use_poll) == [TEXT[:1]]


@poll_or_select
def test_integer_terminator_of_six_collects_six_bytes(converse, use_poll):
    assert _first_bytes_by_count(converse, 6, use_poll) == [TEXT[:6]]


@poll_or_select
def test_none_terminator_collects_everything_without_a_line(converse, use_poll):
    peer, client, finish = converse(None, use_poll)
    client.push(TEXT)
    client.push(QUIT)
    finish()
    assert client.lines == []
    assert client.unterminated == TEXT


@poll_or_select
def test_simple_producer_output_is_sent_in_full(converse, use_poll):
    peer, client, finish = converse(b"\n", use_poll)
    client.push_with_producer(asynchat.simple_producer(TWO_LINES + QUIT, buffer_size=8))
    finish()
    assert client.lines == [b"hello world", b"I'm not dead yet!"]


@poll_or_select
def test_bytes_given_as_producer_are_sent_in_full(converse, use_poll):
    peer, client, finish = converse(b"\n", use_poll)
    client.push_with_producer(TWO_LINES + QUIT)
    finish()
    assert client.lines == [b"hello world", b"I'm not dead yet!"]


@poll_or_select
def test_empty_line_yields_empty_chunk(converse, use_poll):
    peer, client, finish = converse(b"\n", use_poll)
    client.push(b"hello world\n\nI'm not dead yet!\n")
    client.push(QUIT)
    finish()
    assert client.lines == [b"hello world", b"", b"I'm not dead yet!"]


@poll_or_select
def test_close_when_done_sends_queued_data_then_closes(converse, use_poll):
    peer, client, finish = converse(b"\n", use_poll, hold_echo=True)
    client.push(TWO_LINES)
    client.push(QUIT)
    client.close_when_done()
    # The echo starts only after the loop has ended, i.e. after the client
    # closed, so the client cannot have read anything back.
    finish(before_join=peer.release_echo.set)
    assert client.lines == []
    assert len(peer.received) > 0


@poll_or_select
def test_push_accepts_bytes_like_objects_only(converse, use_poll):
    # bpo-12523
    peer, client, finish = converse(b"\n", use_poll)
    line = b"bytes\n"
    for flavour in (line, bytearray(line), memoryview(line)):
        client.push(flavour)
    with pytest.raises(TypeError):
        client.push(10)
    with pytest.raises(TypeError):
        client.push("unicode")
    client.push(QUIT)
    finish()
    assert client.lines == [b"bytes", b"bytes", b"bytes"]


def test_handle_read_ignores_blocking_io_error(monkeypatch):
    # bpo-16133
    sock = unittest.mock.Mock()
    sock.recv.side_effect = BlockingIOError(errno.EAGAIN)
    chat = asynchat.async_chat()
    chat.set_socket(sock)
    errors = []
    monkeypatch.setattr(chat, "handle_error", lambda: errors.append(sys.exc_info()))
    try:
        chat.handle_read()
    finally:
        chat.del_channel()
    assert errors == []


def test_find_prefix_at_end_measures_partial_terminator():
    assert asynchat.find_prefix_at_end("qwerty\r", "\r\n") == 1
    assert asynchat.find_prefix_at_end("qwertydkjf", "\r\n") == 0


def test_negative_terminator_is_rejected():
    # bpo-11259
    with pytest.raises(ValueError):
        asynchat.async_chat().set_terminator(-1)
