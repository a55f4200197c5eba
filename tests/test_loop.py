"""The event loop (smtpd_compat.asyncore.loop) over real loopback sockets.

Where CPython <= 3.11 still has asyncore, the same tests also run against it: the
tests of behaviour we keep pass there too, and the tests of the two loop bugs we
fixed are expected to fail there (xfail, strict), which shows they catch the bug.
"""

import os
import select
import socket
import threading
import time

import pytest

from smtpd_compat import asynchat as our_asynchat
from smtpd_compat import asyncore as our_asyncore
from stdlib_modules import stdlib_modules

WAIT_SECONDS = 20
MODES = [pytest.param(False, id="select"), pytest.param(True, id="poll")]


def _cpython_modules():
    found = stdlib_modules()
    return None if found is None else (found["asyncore"], found["asynchat"])


def implementations(cpython_bug=None):
    """Parameters for our modules and, where present, CPython's.

    ``cpython_bug``: why CPython fails the test, making its run a strict xfail."""
    params = [pytest.param((our_asyncore, our_asynchat), id="ours")]
    marks = [
        pytest.mark.skipif(_cpython_modules() is None, reason="no asyncore in Python >= 3.12")
    ]
    if cpython_bug:
        marks.append(pytest.mark.xfail(strict=True, reason=cpython_bug))
    params.append(pytest.param("cpython", id="cpython", marks=marks))
    return params


@pytest.fixture
def modules(request):
    chosen = request.param
    return _cpython_modules() if chosen == "cpython" else chosen


def connected_pair():
    """(client, server) ends of a TCP connection on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def wait_readable(*socks):
    """Block (boundedly) until every socket in ``socks`` has input."""
    deadline = time.monotonic() + WAIT_SECONDS
    pending = list(socks)
    while pending:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "input never arrived"
        readable, _, _ = select.select(pending, [], [], remaining)
        pending = [sock for sock in pending if sock not in readable]


def run_until(asyncore, channels, condition, use_poll=False):
    """Run loop passes until ``condition()`` holds (at most WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        asyncore.loop(timeout=0.05, map=channels, count=1, use_poll=use_poll)


def make_reader(asyncore):
    class Reader(asyncore.dispatcher):
        """Records what it reads; wants no write events."""

        def __init__(self, sock, channels):
            asyncore.dispatcher.__init__(self, sock, map=channels)
            self.received = b""
            self.reads = 0

        def handle_read(self):
            self.reads += 1
            self.received += self.recv(4096)

        def writable(self):
            return False

    return Reader


# ---------------------------------------------------------------------------
# Bug (8): an event for a closed channel reached the channel that took its fd.


@pytest.mark.parametrize("use_poll", MODES)
@pytest.mark.parametrize(
    "modules",
    implementations(
        "CPython looks the channel up by fd when it delivers, so the newcomer gets "
        "the closed channel's event"
    ),
    indirect=True,
)
def test_event_of_closed_channel_never_reaches_channel_reusing_its_fd(modules, use_poll):
    asyncore, _ = modules
    Reader = make_reader(asyncore)
    channels = {}
    x_client, x_server = connected_pair()
    a_client, a_server = connected_pair()
    first = Reader(x_server, channels)
    doomed = Reader(a_server, channels)
    doomed_fd = doomed._fileno
    newcomers = []

    def close_doomed_and_open_newcomer():
        # Both first and doomed are readable in this pass; first runs before.
        fd = doomed_fd
        doomed.close()
        fresh = socket.socket()
        if fresh.fileno() != fd:
            os.dup2(fresh.fileno(), fd)
            fresh.close()
            fresh = socket.socket(fileno=fd)
        newcomers.append(Reader(fresh, channels))

    first.handle_read = close_doomed_and_open_newcomer
    x_client.sendall(b"go")
    a_client.sendall(b"for doomed")
    wait_readable(x_server, a_server)
    try:
        asyncore.loop(timeout=WAIT_SECONDS, map=channels, count=1, use_poll=use_poll)
        assert [newcomer._fileno for newcomer in newcomers] == [doomed_fd]
        assert newcomers[0].reads == 0
    finally:
        asyncore.close_all(map=channels)
        for sock in (x_client, a_client):
            sock.close()


# ---------------------------------------------------------------------------
# Descriptors of 1024 and more, which select() cannot watch.


@pytest.fixture
def descriptor_above_1024():
    """A connected (client, server) pair whose server end has an fd >= 1024."""
    try:
        import fcntl
        import resource
    except ImportError:
        pytest.skip("needs fcntl and resource (POSIX)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1100
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip("the descriptor limit is below 1100")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    client, server = connected_pair()
    high = fcntl.fcntl(server.fileno(), fcntl.F_DUPFD, 1024)
    server.close()
    server = socket.socket(fileno=high)
    try:
        yield client, server
    finally:
        client.close()
        server.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    "modules",
    implementations("select() raises ValueError for a descriptor >= FD_SETSIZE"),
    indirect=True,
)
def test_default_loop_serves_a_descriptor_above_1024(modules, descriptor_above_1024):
    asyncore, _ = modules
    client, server = descriptor_above_1024
    channels = {}
    reader = make_reader(asyncore)(server, channels)
    assert reader._fileno >= 1024
    client.sendall(b"hello from above 1024")
    try:
        run_until(asyncore, channels, lambda: len(reader.received) >= 21)
        assert reader.received == b"hello from above 1024"
    finally:
        channels.clear()


# ---------------------------------------------------------------------------
# readable() and writable() are asked before every pass, as CPython asks them.


@pytest.mark.parametrize("use_poll", MODES)
@pytest.mark.parametrize("modules", implementations(), indirect=True)
def test_readable_override_is_obeyed_when_its_answer_changes_outside_events(modules, use_poll):
    asyncore, _ = modules

    class Gate(make_reader(asyncore)):
        is_open = False

        def readable(self):
            return self.is_open

    client, server = connected_pair()
    channels = {}
    gate = Gate(server, channels)
    client.sendall(b"waiting")
    wait_readable(server)
    try:
        asyncore.loop(timeout=0, map=channels, count=3, use_poll=use_poll)
        assert gate.reads == 0
        gate.is_open = True  # not in any handler: only the predicate knows
        run_until(asyncore, channels, lambda: gate.received == b"waiting", use_poll)
    finally:
        asyncore.close_all(map=channels)
        client.close()


@pytest.mark.parametrize("use_poll", MODES)
@pytest.mark.parametrize("modules", implementations(), indirect=True)
def test_writable_override_is_obeyed_when_its_answer_changes_outside_events(modules, use_poll):
    asyncore, _ = modules

    class Outbox(asyncore.dispatcher):
        def __init__(self, sock, channels):
            asyncore.dispatcher.__init__(self, sock, map=channels)
            self.outgoing = b""

        def readable(self):
            return False

        def writable(self):
            return bool(self.outgoing)

        def handle_write(self):
            self.outgoing = self.outgoing[self.send(self.outgoing) :]

    client, server = connected_pair()
    channels = {}
    outbox = Outbox(server, channels)
    try:
        asyncore.loop(timeout=0, map=channels, count=3, use_poll=use_poll)
        outbox.outgoing = b"sent once writable() said so"
        run_until(asyncore, channels, lambda: not outbox.outgoing, use_poll)
        client.settimeout(WAIT_SECONDS)
        assert client.recv(100) == b"sent once writable() said so"
    finally:
        asyncore.close_all(map=channels)
        client.close()


@pytest.mark.parametrize("use_poll", MODES)
@pytest.mark.parametrize("modules", implementations(), indirect=True)
def test_output_pushed_outside_any_event_is_all_sent(modules, use_poll):
    asyncore, asynchat = modules

    class Chat(asynchat.async_chat):
        def collect_incoming_data(self, data):
            pass

        def found_terminator(self):
            pass

    client, server = connected_pair()
    channels = {}
    chat = Chat(server, map=channels)
    chat.set_terminator(b"\r\n")
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes
    received = []

    def drain():
        client.settimeout(WAIT_SECONDS)
        total = 0
        while total < len(payload):
            data = client.recv(1 << 16)
            if not data:
                break
            received.append(data)
            total += len(data)

    reader = threading.Thread(target=drain)
    try:
        asyncore.loop(timeout=0, map=channels, count=2, use_poll=use_poll)
        chat.push(payload)  # from outside the loop: part goes, part waits
        reader.start()
        run_until(asyncore, channels, lambda: not chat.producer_fifo, use_poll)
        reader.join(WAIT_SECONDS)
        assert b"".join(received) == payload
    finally:
        asyncore.close_all(map=channels)
        client.close()


@pytest.mark.parametrize("modules", implementations(), indirect=True)
def test_channel_put_straight_into_the_map_is_polled(modules):
    asyncore, _ = modules
    Reader = make_reader(asyncore)
    client, server = connected_pair()
    other_client, other_server = connected_pair()
    channels = {}
    first = Reader(server, channels)
    try:
        asyncore.loop(timeout=0, map=channels, count=2)
        late = Reader(other_server, {})  # joins another map ...
        channels[other_server.fileno()] = late  # ... and this one by hand
        other_client.sendall(b"noticed")
        run_until(asyncore, channels, lambda: late.received == b"noticed")
        assert first.reads == 0
    finally:
        asyncore.close_all(map=channels)
        client.close()
        other_client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_a_forked_child_closes_and_polls_channels_inherited_from_its_parent():
    # The child drops the parent's epoll instance (sharing it would let the
    # child change the parent's registrations).  A channel closed before the
    # child's first pass must close cleanly, and the rest must still be
    # polled.  (Our loop only: CPython's select() loop keeps no registrations.)
    from smtpd_compat import asyncore

    Reader = make_reader(asyncore)
    client, server = connected_pair()
    other_client, other_server = connected_pair()
    channels = {}
    closing = Reader(server, channels)
    staying = Reader(other_server, channels)
    asyncore.loop(timeout=0, map=channels, count=2)
    other_client.sendall(b"after fork")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        status = 1
        try:
            closing.close()
            run_until(asyncore, channels, lambda: staying.received == b"after fork")
            status = 0 if list(channels.values()) == [staying] else 2
        finally:
            os._exit(status)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        # The parent's registrations are its own still.
        client.sendall(b"parent")
        run_until(asyncore, channels, lambda: closing.received == b"parent")
    finally:
        asyncore.close_all(map=channels)
        client.close()
        other_client.close()
