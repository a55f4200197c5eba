"""pytest port of CPython 3.11's Lib/test/test_asyncore.py.

The original's BaseTestAPI mixin runs under six TestCase classes (IPv4,
IPv6 and Unix sockets, each with select() and with poll()); here each of
its tests is parametrized over that matrix instead.  CASES.rst maps each
original test to the function that ports it.
"""

import contextlib
import errno
import gc
import io
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import types

import pytest

from ported_support import (
    HAS_AF_UNIX,
    HAS_POLL,
    IPV6_ENABLED,
    LOOPBACK_V4,
    LOOPBACK_V6,
    join_or_fail,
    load_implementation,
)

smtpd, asyncore, asynchat = load_implementation()


@pytest.fixture(autouse=True)
def empty_socket_map():
    """Each test starts and ends with nothing left in asyncore's global map."""
    asyncore.close_all(ignore_all=True)
    yield
    asyncore.close_all(ignore_all=True)


needs_poll = pytest.mark.skipif(not HAS_POLL, reason="select.poll required")


# ---------------------------------------------------------------------------
# Stand-ins for dispatchers, used by the module-level helper tests
# ---------------------------------------------------------------------------


class RaisesExitNow:
    """Every event handler raises asyncore.ExitNow."""

    def _exit(self):
        raise asyncore.ExitNow()

    handle_read_event = handle_write_event = handle_expt_event = handle_close = _exit


class RaisesOtherError:
    """Every event handler raises a plain Exception; handle_error notes it."""

    error_handled = False

    def _fail(self):
        raise Exception("handler failure")

    handle_read_event = handle_write_event = handle_expt_event = handle_close = _fail

    def handle_error(self):
        self.error_handled = True


def _sets_true(attribute):
    def handler(self):
        setattr(self, attribute, True)

    return handler


class EventRecorder:
    """Remembers which of its handlers readwrite() called."""

    HANDLERS = ("read", "expt", "write", "closed", "error_handled")
    read = expt = write = closed = error_handled = False

    handle_read_event = _sets_true("read")
    handle_expt_event = _sets_true("expt")
    handle_write_event = _sets_true("write")
    handle_close = _sets_true("closed")
    handle_error = _sets_true("error_handled")

    def called(self):
        return {name for name in self.HANDLERS if getattr(self, name)}


class FakeChannel:
    """Enough of a dispatcher for close_all(): its socket notes close()."""

    def __init__(self):
        self.socket = types.SimpleNamespace(closed=False, fileno=lambda: 42)
        self.socket.close = lambda: setattr(self.socket, "closed", True)

    def close(self):
        self.socket.close()


# ---------------------------------------------------------------------------
# HelperFunctionTests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ["read", "write", "_exception"])
def test_read_write_exception_helpers_let_exitnow_through_and_report_others(entry_point):
    call = getattr(asyncore, entry_point)
    with pytest.raises(asyncore.ExitNow):
        call(RaisesExitNow())
    crashing = RaisesOtherError()
    call(crashing)
    assert crashing.error_handled is True


@needs_poll
def test_readwrite_dispatches_each_poll_flag_to_its_handler():
    flag_to_handler = [
        (select.POLLIN, "read"),
        (select.POLLPRI, "expt"),
        (select.POLLOUT, "write"),
        (select.POLLERR, "closed"),
        (select.POLLHUP, "closed"),
        (select.POLLNVAL, "closed"),
    ]
    for flag, handler in flag_to_handler:
        recorder = EventRecorder()
        assert getattr(recorder, handler) is False
        asyncore.readwrite(recorder, flag)
        assert recorder.called() == {handler}, flag

        with pytest.raises(asyncore.ExitNow):
            asyncore.readwrite(RaisesExitNow(), flag)

        crashing = RaisesOtherError()
        assert crashing.error_handled is False
        asyncore.readwrite(crashing, flag)
        assert crashing.error_handled is True, flag


def _fill_map_with_fake_channels(count=10):
    channels = [FakeChannel() for _ in range(count)]
    assert not any(channel.socket.closed for channel in channels)
    return channels, dict(enumerate(channels))


def test_close_all_closes_and_empties_the_given_map():
    channels, channel_map = _fill_map_with_fake_channels()
    asyncore.close_all(channel_map)
    assert channel_map == {}
    assert all(channel.socket.closed for channel in channels)


def test_close_all_without_argument_uses_the_global_socket_map(monkeypatch):
    channels, channel_map = _fill_map_with_fake_channels()
    monkeypatch.setattr(asyncore, "socket_map", channel_map)
    asyncore.close_all()
    assert channel_map == {}
    assert all(channel.socket.closed for channel in channels)


def test_compact_traceback_describes_innermost_frame():
    try:
        raise Exception("I don't like spam!")
    except Exception:
        exc_type, exc_value, _ = sys.exc_info()
        summary = asyncore.compact_traceback()
    (filename, function, line), got_type, got_value, info = summary
    assert os.path.basename(filename) == os.path.basename(__file__)
    assert function == "test_compact_traceback_describes_innermost_frame"
    assert got_type is exc_type
    assert got_value is exc_value
    assert info == "[%s|%s|%s]" % (filename, function, line)


# ---------------------------------------------------------------------------
# DispatcherTests
# ---------------------------------------------------------------------------


@pytest.fixture
def dispatcher():
    created = asyncore.dispatcher()
    yield created
    asyncore.close_all()


def test_new_dispatcher_is_readable_and_writable(dispatcher):
    assert dispatcher.readable() is True
    assert dispatcher.writable() is True


def test_dispatcher_repr_names_class_and_address(dispatcher):
    # The module is named as the standard library names it, whichever
    # implementation is under test: code may parse these reprs.
    assert repr(dispatcher) == "<asyncore.dispatcher at %#x>" % id(dispatcher)


def test_log_writes_to_stderr_with_log_prefix(dispatcher, capsys):
    first = "Lovely spam! Wonderful spam!"
    second = "I don't like spam!"
    dispatcher.log(first)
    dispatcher.log(second)
    assert capsys.readouterr().err.splitlines() == ["log: " + first, "log: " + second]


def test_log_info_prints_type_prefix_defaulting_to_info(dispatcher, capsys):
    messages = [
        ("Have you got anything without spam?", "EGGS"),
        ("Why can't she have egg bacon spam and sausage?", None),
        ("THAT'S got spam in it!", "SPAM"),
    ]
    for text, kind in messages:
        if kind is None:
            dispatcher.log_info(text)
        else:
            dispatcher.log_info(text, kind)
    assert capsys.readouterr().out.splitlines() == [
        "EGGS: " + messages[0][0],
        "info: " + messages[1][0],
        "SPAM: " + messages[2][0],
    ]


def test_default_handlers_warn_about_unhandled_events(dispatcher, capsys):
    dispatcher.ignore_log_types = ()
    dispatcher.handle_expt()
    dispatcher.handle_read()
    dispatcher.handle_write()
    dispatcher.handle_connect()
    assert capsys.readouterr().out.splitlines() == [
        "warning: unhandled incoming priority event",
        "warning: unhandled read event",
        "warning: unhandled write event",
        "warning: unhandled connect event",
    ]


def test_strerror_matches_os_strerror_and_copes_with_unknown_codes(dispatcher):
    # bpo-8573
    if hasattr(os, "strerror"):
        assert asyncore._strerror(errno.EPERM) == os.strerror(errno.EPERM)
    else:
        asyncore._strerror(errno.EPERM)
    assert asyncore._strerror(-1) != ""


# ---------------------------------------------------------------------------
# DispatcherWithSendTests
# ---------------------------------------------------------------------------


class SendOnlyDispatcher(asyncore.dispatcher_with_send):
    """Writes its buffer out and never asks to read."""

    readable = staticmethod(lambda: False)

    def handle_connect(self):
        """The connection is only used for sending; nothing to set up."""


def _collect_until_newline(listener, sink, done):
    """Accept one connection and copy what it sends, minus newlines, into sink."""
    try:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            deadline = time.monotonic() + 3.0
            for _ in range(200):
                if time.monotonic() > deadline:
                    break
                ready, _, _ = select.select([conn], [], [], 0.1)
                if not ready:
                    continue
                chunk = conn.recv(10)
                sink.write(chunk.replace(b"\n", b""))
                if b"\n" in chunk or not chunk:
                    break
    finally:
        listener.close()
        done.set()


def test_dispatcher_with_send_delivers_everything_it_buffered():
    listener = socket.socket()
    listener.settimeout(3)
    listener.bind((LOOPBACK_V4, 0))
    listener.listen()
    port = listener.getsockname()[1]
    received = io.BytesIO()
    done = threading.Event()
    collector = threading.Thread(target=_collect_until_newline, args=(listener, received, done))
    collector.start()
    try:
        payload = b"Suppose there isn't a 16-ton weight?"
        sender = SendOnlyDispatcher()
        sender.create_socket()
        sender.connect((LOOPBACK_V4, port))
        # Wait (bounded) for the non-blocking connect to finish.
        select.select([], [sender.socket], [], 3.0)

        sender.send(payload)
        sender.send(payload)
        sender.send(b"\n")
        for _ in range(1000):
            if not sender.out_buffer:
                break
            asyncore.poll()
        assert done.wait(10)
        assert received.getvalue() == payload * 2
    finally:
        join_or_fail(collector)
        asyncore.close_all()


# ---------------------------------------------------------------------------
# FileWrapperTest
# ---------------------------------------------------------------------------

needs_file_wrapper = pytest.mark.skipif(
    not hasattr(asyncore, "file_wrapper"), reason="asyncore.file_wrapper required"
)

FILE_CONTENT = b"It's not dead, it's sleeping!"


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "wrapped.bin"
    path.write_bytes(FILE_CONTENT)
    return str(path)


def _wrap_copy_of_fd(path, flags):
    """Open path, wrap the descriptor, close the original; return (wrapper, old fd)."""
    fd = os.open(path, flags)
    try:
        return asyncore.file_wrapper(fd), fd
    finally:
        os.close(fd)


@needs_file_wrapper
def test_file_wrapper_reads_through_its_own_duplicate_fd(data_file):
    wrapper, original_fd = _wrap_copy_of_fd(data_file, os.O_RDONLY)
    assert wrapper.fd != original_fd
    assert wrapper.fileno() != original_fd
    assert wrapper.recv(13) == b"It's not dead"
    assert wrapper.read(6) == b", it's"
    wrapper.close()
    with pytest.raises(OSError):
        wrapper.read(1)


@needs_file_wrapper
def test_file_wrapper_write_and_send_append_to_the_file(data_file):
    wrapper, _ = _wrap_copy_of_fd(data_file, os.O_WRONLY | os.O_APPEND)
    wrapper.write(b"Come again?")
    wrapper.send(b"I want to buy some cheese.")
    wrapper.close()
    with open(data_file, "rb") as f:
        assert f.read() == FILE_CONTENT + b"Come again?" + b"I want to buy some cheese."


@needs_file_wrapper
@pytest.mark.skipif(
    not hasattr(asyncore, "file_dispatcher"), reason="asyncore.file_dispatcher required"
)
def test_file_dispatcher_reads_file_in_poll_loop(data_file):
    chunks = []

    class Reader(asyncore.file_dispatcher):
        def handle_read(self):
            chunks.append(self.recv(len(FILE_CONTENT)))

    fd = os.open(data_file, os.O_RDONLY)
    try:
        Reader(fd)
    finally:
        os.close(fd)
    try:
        asyncore.loop(timeout=0.01, use_poll=True, count=2)
    finally:
        asyncore.close_all()
    assert b"".join(chunks) == FILE_CONTENT


@needs_file_wrapper
def test_unclosed_file_wrapper_emits_resource_warning(data_file):
    # bpo-11453
    wrapper, _ = _wrap_copy_of_fd(data_file, os.O_RDONLY)
    with pytest.warns(ResourceWarning) as record:
        del wrapper
        gc.collect()
    assert all(issubclass(w.category, ResourceWarning) for w in record)


@needs_file_wrapper
def test_file_wrapper_close_reports_error_once_then_is_idempotent(data_file):
    wrapper, _ = _wrap_copy_of_fd(data_file, os.O_RDONLY)
    os.close(wrapper.fd)  # the wrapper's own duplicate
    with pytest.raises(OSError):
        wrapper.close()
    assert wrapper.fd == -1
    wrapper.close()


# ---------------------------------------------------------------------------
# BaseTestAPI, run over IPv4 / IPv6 / Unix sockets x select / poll
# ---------------------------------------------------------------------------


def _reraise_current(self):
    raise


class StrictHandler(asyncore.dispatcher):
    """A dispatcher whose callbacks fail unless a subclass expects them.

    ``flag`` is what the API tests wait for; errors are re-raised so that
    they surface from asyncore.loop() instead of being logged.
    """

    flag = False
    handle_error = _reraise_current

    def _unexpected(self, *args):
        raise Exception("unexpected callback on %r" % (self,))

    handle_accept = handle_accepted = handle_connect = _unexpected
    handle_expt = handle_close = _unexpected

    def on_accepted(self):
        """Called by Server right after wrapping an accepted socket."""

    @classmethod
    def dialing(cls, family, address):
        """A new instance with a socket of ``family`` connecting to ``address``."""
        handler = cls()
        handler.create_socket(family)
        handler.connect(address)
        return handler


def _listen_on(dispatcher, address):
    """Bind the dispatcher's socket (clearing a stale Unix path), listen, note the address."""
    sock = dispatcher.socket
    is_unix = HAS_AF_UNIX and sock.family == socket.AF_UNIX
    if is_unix and os.path.exists(address):
        os.unlink(address)
    try:
        sock.bind(address)
    except PermissionError:
        if not is_unix:
            raise
        sock.close()
        pytest.skip("cannot bind AF_UNIX sockets")
    dispatcher.listen(5)
    dispatcher.address = sock.getsockname()


class Server(asyncore.dispatcher):
    """Hands every accepted connection to ``handler_class``."""

    handle_error = _reraise_current

    def __init__(self, family, address, handler_class=StrictHandler):
        asyncore.dispatcher.__init__(self)
        self.handler_class = handler_class
        self.create_socket(family)
        self.set_reuse_addr()
        _listen_on(self, address)

    def handle_accepted(self, sock, addr):
        self.handler_class(sock).on_accepted()


class Client(StrictHandler):
    """A StrictHandler that accepts being told its connect() completed."""

    def handle_connect(self):
        pass

    def flag_and_close(self):
        """A handler for tests that wait for the connection to end."""
        self.flag = True
        self.close()


class Listener(StrictHandler):
    """A listening StrictHandler; unlike Server it leaves SO_REUSEADDR alone."""

    def __init__(self, family, address):
        StrictHandler.__init__(self)
        self.create_socket(family)
        _listen_on(self, address)


class Transport:
    def __init__(self, kind, family, address, use_poll):
        self.kind = kind
        self.family = family
        self.address = address
        self.use_poll = use_poll

    def run_until_flagged(self, watched, rounds=100, pause=0.05):
        """Run the loop one pass at a time until watched.flag is set."""
        for _ in range(rounds):
            if not asyncore.socket_map:
                break
            asyncore.loop(timeout=0.01, count=1, use_poll=self.use_poll)
            if watched.flag:
                return
            time.sleep(pause)
        pytest.fail("flag not set")


TRANSPORT_MATRIX = pytest.mark.parametrize(
    "kind,use_poll",
    [
        pytest.param("ipv4", False, id="ipv4-select"),
        pytest.param("ipv4", True, id="ipv4-poll"),
        pytest.param("ipv6", False, id="ipv6-select"),
        pytest.param("ipv6", True, id="ipv6-poll"),
        pytest.param("unix", False, id="unix-select"),
        pytest.param("unix", True, id="unix-poll"),
    ],
)


@pytest.fixture
def transport(kind, use_poll):
    if use_poll and not HAS_POLL:
        pytest.skip("select.poll required")
    scratch = None
    if kind == "ipv4":
        family, address = socket.AF_INET, (LOOPBACK_V4, 0)
    elif kind == "ipv6":
        if not IPV6_ENABLED:
            pytest.skip("IPv6 support required")
        family, address = socket.AF_INET6, (LOOPBACK_V6, 0)
    else:
        if not HAS_AF_UNIX:
            pytest.skip("Unix sockets required")
        # A short directory keeps the path under the sun_path size limit.
        scratch = tempfile.mkdtemp(prefix="asyncore-")
        family, address = socket.AF_UNIX, os.path.join(scratch, "sock")
    yield Transport(kind, family, address, use_poll)
    asyncore.close_all(ignore_all=True)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def _skip_for_unix_sockets(transport):
    if transport.kind == "unix":
        pytest.skip("Not applicable to AF_UNIX sockets.")


@TRANSPORT_MATRIX
def test_handle_connect_called_once_connected(transport):
    class NotedClient(Client):
        def handle_connect(self):
            self.flag = True

    server = Server(transport.family, transport.address)
    client = NotedClient.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_handle_accept_called_for_incoming_connection(transport):
    class NotedListener(Listener):
        def handle_accept(self):
            self.flag = True

    server = NotedListener(transport.family, transport.address)
    Client.dialing(transport.family, server.address)
    transport.run_until_flagged(server)


@TRANSPORT_MATRIX
def test_default_handle_accept_passes_socket_to_handle_accepted(transport):
    class NotedListener(Listener):
        # asyncore's own handle_accept, in place of StrictHandler's guard.
        handle_accept = asyncore.dispatcher.handle_accept

        def handle_accepted(self, sock, addr):
            self.flag = True
            sock.close()

    server = NotedListener(transport.family, transport.address)
    Client.dialing(transport.family, server.address)
    transport.run_until_flagged(server)


@TRANSPORT_MATRIX
def test_handle_read_called_when_data_arrives(transport):
    class NotedClient(Client):
        def handle_read(self):
            self.flag = True

    class Talker(StrictHandler):
        def on_accepted(self):
            self.send(b"x" * 1024)

    server = Server(transport.family, transport.address, Talker)
    client = NotedClient.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_handle_write_called_when_writable(transport):
    class NotedClient(Client):
        def handle_write(self):
            self.flag = True

    server = Server(transport.family, transport.address)
    client = NotedClient.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_handle_close_called_when_peer_closes(transport):
    class NotedClient(Client):
        handle_close = Client.flag_and_close

        def handle_read(self):
            # The peer's close is only noticed by calling recv().
            self.recv(1024)

    class Hangup(StrictHandler):
        def on_accepted(self):
            self.close()

    server = Server(transport.family, transport.address, Hangup)
    client = NotedClient.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_handle_close_called_after_connection_breaks(transport):
    # bpo-5661 and bpo-11265: ECONNRESET / EPIPE while sending.
    block = b"\0" * 128

    class Flooder(Client):
        handle_close = handle_expt = Client.flag_and_close

        def handle_write(self):
            self.send(block)

    class ReadOnceAndHangUp(StrictHandler):
        # Never writable: this side only reads one block, then hangs up.
        writable = staticmethod(lambda: False)

        def handle_read(self):
            self.recv(len(block))
            self.close()

    server = Server(transport.family, transport.address, ReadOnceAndHangUp)
    client = Flooder.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
@pytest.mark.skipif(sys.platform.startswith("sunos"), reason="OOB support is broken on Solaris")
def test_handle_expt_called_for_out_of_band_data(transport):
    _skip_for_unix_sockets(transport)
    if sys.platform == "darwin" and transport.use_poll:
        pytest.skip("poll may fail on macOS; see bpo-28087")

    class UrgentSender(StrictHandler):
        def on_accepted(self):
            self.socket.send(b"\xf4", socket.MSG_OOB)

    class UrgentReader(Client):
        def handle_expt(self):
            self.urgent = self.socket.recv(1024, socket.MSG_OOB)
            self.flag = True

    server = Server(transport.family, transport.address, UrgentSender)
    client = UrgentReader.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_handle_error_called_inside_the_failing_handler(transport):
    class FailingClient(Client):
        def handle_write(self):
            return 1.0 / 0

        def handle_error(self):
            # Runs while the ZeroDivisionError is still being handled.
            active = sys.exc_info()[1]
            self.flag = True
            if not isinstance(active, ZeroDivisionError):
                raise Exception("exception not raised")

    server = Server(transport.family, transport.address)
    client = FailingClient.dialing(transport.family, server.address)
    transport.run_until_flagged(client)


@TRANSPORT_MATRIX
def test_connected_and_accepting_attributes_follow_the_lifecycle(transport):
    server = Server(transport.family, transport.address)
    client = Client.dialing(transport.family, server.address)

    def state(obj):
        return obj.connected, obj.accepting

    assert state(server) == (False, True)
    # Whether the client is already connected here varies by platform.
    assert client.accepting is False

    asyncore.loop(timeout=0.01, use_poll=transport.use_poll, count=100)
    assert state(server) == (False, True)
    assert state(client) == (True, False)

    client.close()
    assert state(server) == (False, True)
    assert state(client) == (False, False)

    server.close()
    assert state(server) == (False, False)


def _dispatcher_owning_socket(family):
    created = asyncore.dispatcher()
    created.create_socket(family)
    return created


@TRANSPORT_MATRIX
def test_create_socket_makes_nonblocking_noninheritable_stream(transport):
    sock = _dispatcher_owning_socket(transport.family).socket
    assert (sock.family, sock.type) == (transport.family, socket.SOCK_STREAM)
    assert sock.gettimeout() == 0
    assert sock.get_inheritable() is False


@TRANSPORT_MATRIX
def test_bind_claims_the_port(transport):
    _skip_for_unix_sockets(transport)
    holder = _dispatcher_owning_socket(transport.family)
    holder.bind(transport.address)
    holder.listen(5)
    host, port = transport.address[0], holder.socket.getsockname()[1]

    latecomer = _dispatcher_owning_socket(transport.family)
    # EADDRINUSE proves the first bind() took effect.
    with pytest.raises(OSError):
        latecomer.bind((host, port))


def _reuse_addr_enabled(sock):
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))


@TRANSPORT_MATRIX
def test_set_reuse_addr_turns_on_so_reuseaddr(transport):
    _skip_for_unix_sockets(transport)
    platform_supports_it = True
    with socket.socket(transport.family) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError:
            platform_supports_it = False
    if not platform_supports_it:
        pytest.skip("SO_REUSEADDR not supported on this platform")

    # A socket handed in from outside keeps its default (off) ...
    d = asyncore.dispatcher(socket.socket(transport.family))
    assert _reuse_addr_enabled(d.socket) is False
    d.socket.close()
    # ... while set_reuse_addr() on a socket asyncore created turns it on.
    d.create_socket(transport.family)
    d.set_reuse_addr()
    assert _reuse_addr_enabled(d.socket) is True


@TRANSPORT_MATRIX
def test_connection_reset_right_after_connect_does_not_break_loop(transport):
    # bpo-10340
    if transport.kind not in ("ipv4", "ipv6"):
        pytest.skip("test specific to AF_INET and AF_INET6")

    server = Server(transport.family, transport.address)
    loop_errors = []

    def serve_briefly():
        # About 500 ms; the connection is made within 200 ms.
        try:
            asyncore.loop(timeout=0.1, count=5)
        except BaseException as exc:
            loop_errors.append(exc)

    runner = threading.Thread(target=serve_briefly)
    runner.start()
    try:
        with socket.socket(transport.family, socket.SOCK_STREAM) as prober:
            # Linger on, timeout 0: close() sends RST instead of FIN.
            prober.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            prober.settimeout(0.2)
            with contextlib.suppress(OSError):
                prober.connect(server.address)
    finally:
        join_or_fail(runner)
    assert loop_errors == []
