"""Faults of CPython's smtpd that smtpd_compat fixes, one behaviour per test.

Each is listed, with its test, in README.rst under "Differences from CPython's
smtpd"; the command line's are in test_cpython_bugs_fixed_cli.py. Sessions run over
real loopback sockets, either against a server in a loop thread (``start_server``)
or, where the test must choose how the input is split into reads, against one
channel whose reads the test drives itself (``hand_driven``).
"""

import select
import socket
import time

import pytest

import smtpd_compat as smtpd
from smtpd_compat import asyncore

WAIT_SECONDS = 20
FQDN = socket.getfqdn().encode()

GREETING = b"220 " + FQDN + b" Python SMTP proxy version 0.3\r\n"
EHLO_REPLY = b"250-" + FQDN + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n"
OK = b"250 OK\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
BYE = b"221 Bye\r\n"
NEED_MAIL = b"503 Error: need MAIL command\r\n"
MAIL_SYNTAX = b"501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]\r\n"
RCPT_SYNTAX = b"501 Syntax: RCPT TO: <address> [SP <mail-parameters>]\r\n"
LOCAL_ERROR = b"451 Requested action aborted: local error in processing\r\n"
ENVELOPE = [b"EHLO client.example", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>"]
ENVELOPE_REPLIES = EHLO_REPLY + OK + OK


# --------------------------------------------------------------------------
# Servers and clients


class RecordingChannel(smtpd.SMTPChannel):
    """Hands what it logs to its server, for the test to read."""

    def log_info(self, message, type="info"):
        self.smtp_server.logged.append((type, message))


class Recorder(smtpd.SMTPServer):
    """Keeps every process_message call as it was made. ``outcomes`` says what
    each call does in turn: None (the channel says 250 OK), a reply to return,
    or an exception to raise; once they run out, calls return None."""

    channel_class = RecordingChannel

    def __init__(self, *args, outcomes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.logged = [], []
        self.outcomes = list(outcomes)

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.calls.append((peer, mailfrom, rcpttos, data, kwargs))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def port_of(server):
    return server.socket.getsockname()[1]


@pytest.fixture
def start_server(run_in_thread):
    """Start ``server_class(("127.0.0.1", 0), remoteaddr, **options)`` in a loop
    thread of its own; returns the server."""

    def start(server_class=Recorder, remoteaddr=None, **options):
        return run_in_thread(
            lambda socket_map: server_class(
                ("127.0.0.1", 0), remoteaddr, map=socket_map, **options
            )
        )

    return start


def _reply_end(received):
    """Where the first complete reply in ``received`` ends (0: none yet). A reply
    ends with a line whose code is followed by a space (RFC 5321 4.2.1)."""
    start = 0
    while True:
        end = received.find(b"\r\n", start)
        if end < 0:
            return 0
        if received[start + 3 : start + 4] != b"-":
            return end + 2
        start = end + 2


def open_connection(server):
    return socket.create_connection(("127.0.0.1", port_of(server)), timeout=WAIT_SECONDS)


class Client:
    """A raw SMTP client on a connected socket: exact bytes out, exact bytes in."""

    def __init__(self, sock):
        self.sock = sock
        self.received = b""
        self.greeting = self.reply()

    def _receive(self, deadline):
        assert time.monotonic() < deadline, "timed out; got %r" % self.received
        chunk = self.sock.recv(65536)
        self.received += chunk
        return chunk

    def reply(self):
        """Read one complete reply."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not _reply_end(self.received):
            assert self._receive(deadline), "connection closed; got %r" % self.received
        end = _reply_end(self.received)
        reply, self.received = self.received[:end], self.received[end:]
        return reply

    def say(self, *lines):
        """Send each line in turn, reading its reply; returns the replies joined."""
        replies = b""
        for line in lines:
            self.sock.sendall(line + b"\r\n")
            replies += self.reply()
        return replies

    def send(self, data):
        self.sock.sendall(data)

    def rest(self):
        """Everything the server sends until it closes the connection."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self._receive(deadline):
            pass
        rest, self.received = self.received, b""
        return rest

    def close(self):
        self.sock.close()


@pytest.fixture
def connect():
    clients = []

    def open_client(server):
        client = Client(open_connection(server))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def wait_readable(sock):
    readable, _, _ = select.select([sock], [], [], WAIT_SECONDS)
    assert readable, "nothing arrived"


class HandDriven:
    """One channel on a real loopback connection, with no loop: ``feed`` sends
    bytes and then has the channel read once, so that each feed is one read."""

    def __init__(self, server, **options):
        self.server = server
        sock = open_connection(server)
        wait_readable(server.socket)
        conn, addr = server.accept()
        self.channel = server.channel_class(server, conn, addr, map=server._map, **options)
        self.client = Client(sock)

    def feed(self, data):
        self.client.send(data)
        wait_readable(self.channel.socket)
        self.channel.handle_read()


@pytest.fixture
def hand_driven():
    """``hand_driven(server_class=Recorder, **options)``: a HandDriven channel of
    a server that is never looped; the options go to server and channel."""
    wires = []

    def start(server_class=Recorder, **options):
        server = server_class(("127.0.0.1", 0), None, map={}, **options)
        wires.append(HandDriven(server, **options))
        return wires[-1]

    yield start
    for wire in wires:
        wire.client.close()
        asyncore.close_all(map=wire.server._map)


# --------------------------------------------------------------------------
# 1. After 552 (too much data) the transaction is over


def test_after_552_too_much_data_a_new_mail_command_gets_250(start_server, connect):
    client = connect(start_server(data_size_limit=70))
    client.say(*ENVELOPE, b"DATA")
    client.send(b"x" * 80 + b"\r\n.\r\n")
    assert client.reply() == b"552 Error: Too much mail data\r\n"
    assert client.say(b"MAIL FROM:<n@x.y>") == OK


def test_after_552_too_much_data_the_next_message_is_delivered_on_its_own(start_server, connect):
    server = start_server(data_size_limit=70)
    client = connect(server)
    client.say(*ENVELOPE, b"DATA")
    client.send(b"x" * 80 + b"\r\n.\r\n")
    client.reply()
    replies = client.say(
        b"MAIL FROM:<n@x.y>", b"RCPT TO:<m@x.y>", b"DATA", b"second\r\n.", b"QUIT"
    )
    assert replies == OK + OK + GO_AHEAD + OK + BYE
    peer = client.sock.getsockname()
    assert server.calls == [
        (peer, "n@x.y", ["m@x.y"], b"second", {"mail_options": [], "rcpt_options": []})
    ]


# --------------------------------------------------------------------------
# 2. command_size_limits belong to each connection


def mail_line(length):
    """A MAIL command line of ``length`` bytes, CRLF not counted."""
    head, tail = b"MAIL FROM:<", b"@example.org>"
    return head + b"a" * (length - len(head) - len(tail)) + tail


def test_a_new_connection_leaves_the_mail_line_limit_of_an_ehlod_one_alone(start_server, connect):
    server = start_server()
    first = connect(server)
    first.say(b"EHLO a.example")
    connect(server)  # its greeting read: its channel exists
    # 512 + 26 for SIZE, since this connection said EHLO.
    assert first.say(mail_line(530)) == OK


def test_another_connections_ehlo_leaves_this_connections_mail_line_limit_alone(
    start_server, connect
):
    server = start_server()
    first, second = connect(server), connect(server)
    first.say(b"EHLO a.example")
    second.say(b"EHLO b.example")
    assert first.say(mail_line(550)) == b"500 Error: line too long\r\n"


def test_command_size_limits_class_attribute_stays_the_untouched_default(hand_driven):
    wire = hand_driven()
    wire.feed(b"EHLO a.example\r\n")
    assert wire.channel.command_size_limits == {"MAIL": 538}
    assert wire.channel.max_command_size_limit == 538
    assert smtpd.SMTPChannel.command_size_limits == {}
    assert smtpd.SMTPChannel.command_size_limits.default_factory() == 512


# --------------------------------------------------------------------------
# 3. DATA answered by '.' at once: an empty message


@pytest.mark.parametrize(
    "options, data, kwargs",
    [({}, b"", {"mail_options": [], "rcpt_options": []}), ({"decode_data": True}, "", {})],
    ids=["bytes", "decode_data"],
)
def test_empty_message_right_after_data_is_delivered_and_answered(
    start_server, connect, options, data, kwargs
):
    server = start_server(**options)
    client = connect(server)
    client.say(*ENVELOPE)
    client.send(b"DATA\r\n.\r\nQUIT\r\n")
    assert client.rest() == GO_AHEAD + OK + BYE
    peer = client.sock.getsockname()
    assert server.calls == [(peer, "a@example.org", ["b@example.net"], data, kwargs)]


def test_dot_line_sent_after_the_354_reply_ends_an_empty_message(start_server, connect):
    server = start_server()
    client = connect(server)
    assert client.say(*ENVELOPE, b"DATA", b".") == ENVELOPE_REPLIES + GO_AHEAD + OK
    assert [call[3] for call in server.calls] == [b""]


# --------------------------------------------------------------------------
# 4. Client input CPython's channel raised on: a 5xx reply, and the session goes on


def test_command_that_is_not_utf8_gets_500_and_the_session_goes_on(start_server, connect):
    client = connect(start_server())
    replies = client.say(b"EHLO \xff\xfe", b"EHLO client.example")
    assert replies == b"500 Error: command line is not valid UTF-8\r\n" + EHLO_REPLY


def test_command_that_is_not_utf8_gets_500_under_decode_data(start_server, connect):
    client = connect(start_server(decode_data=True))
    replies = client.say(b"HELO \xc3", b"HELO client.example")
    assert replies == b"500 Error: command line is not valid UTF-8\r\n250 " + FQDN + b"\r\n"


def test_overlong_command_that_is_not_utf8_gets_line_too_long(start_server, connect):
    client = connect(start_server())
    assert client.say(b"NOOP " + b"\xff" * 600) == b"500 Error: line too long\r\n"


@pytest.mark.parametrize(
    "argument",
    # Each made CPython's channel raise (IndexError, HeaderParseError or
    # AttributeError) and drop the connection.
    [
        b"<",  # unbalanced angle brackets
        b"<<a@example.org>",
        b'"',  # a stray quote
        b"foo@",  # no domain
        b"<a@",
        b"<a@[1.2",  # an unclosed domain literal
        b"<@a,(x)",  # odd source routes
        b"<@a,@b",
        b"<@>:a@example.org>",
    ],
)
def test_mail_from_address_the_parser_cannot_read_gets_501_and_the_session_goes_on(
    start_server, connect, argument
):
    client = connect(start_server())
    client.say(b"EHLO client.example")
    assert client.say(b"MAIL FROM:" + argument, b"MAIL FROM:<a@example.org>") == MAIL_SYNTAX + OK


def test_rcpt_to_address_the_parser_cannot_read_gets_501(start_server, connect):
    client = connect(start_server())
    client.say(b"EHLO client.example", b"MAIL FROM:<a@example.org>")
    assert client.say(b"RCPT TO:<", b"RCPT TO:<b@example.net>") == RCPT_SYNTAX + OK


def test_vrfy_address_the_parser_cannot_read_gets_502_could_not_vrfy(start_server, connect):
    # 502 is CPython's own reply to a VRFY argument without an address in it.
    client = connect(start_server())
    assert client.say(b"VRFY foo@") == b"502 Could not VRFY foo@\r\n"


def test_size_parameter_without_a_value_gets_501(start_server, connect):
    client = connect(start_server())
    client.say(b"EHLO client.example")
    assert client.say(b"MAIL FROM:<a@example.org> SIZE", b"NOOP") == MAIL_SYNTAX + OK


def test_size_parameter_of_digits_int_cannot_read_gets_501(start_server, connect):
    # str.isdigit() takes U+00B2 (superscript two); int() does not.
    client = connect(start_server())
    client.say(b"EHLO client.example")
    assert client.say(b"MAIL FROM:<a@example.org> SIZE=\xc2\xb2", b"NOOP") == MAIL_SYNTAX + OK


def test_non_ascii_command_echoed_in_a_reply_is_escaped(start_server, connect):
    client = connect(start_server())
    replies = client.say("F\u00fc".encode(), b"NOOP")
    assert replies == b'500 Error: command "F\\xdc" not recognized\r\n' + OK


def test_non_ascii_vrfy_argument_echoed_in_a_reply_is_escaped(start_server, connect):
    client = connect(start_server())
    assert client.say("VRFY (\u00fc)".encode(), b"NOOP") == b"502 Could not VRFY (\\xfc)\r\n" + OK


def test_non_ascii_echo_after_mail_with_smtputf8_is_sent_as_utf8(start_server, connect):
    client = connect(start_server(enable_SMTPUTF8=True))
    client.say(b"EHLO client.example", b"MAIL FROM:<a@example.org> SMTPUTF8")
    assert (
        client.say("F\u00fc".encode())
        == '500 Error: command "F\u00dc" not recognized\r\n'.encode()
    )


# --------------------------------------------------------------------------
# 5. decode_data: UTF-8 decoded a whole line or message at a time


def test_decode_data_utf8_character_split_across_reads_is_decoded(hand_driven):
    wire = hand_driven(decode_data=True)
    for line in (
        b"HELO client.example",
        b"MAIL FROM:<a@example.org>",
        b"RCPT TO:<b@example.net>",
        b"DATA",
    ):
        wire.feed(line + b"\r\n")
    wire.feed(b"caf\xc3")
    wire.feed(b"\xa9\r\n.\r\n")
    replies = b"".join(wire.client.reply() for _ in range(5))
    assert replies == b"250 " + FQDN + b"\r\n" + OK + OK + GO_AHEAD + OK
    peer = wire.client.sock.getsockname()
    assert wire.server.calls == [(peer, "a@example.org", ["b@example.net"], "caf\u00e9", {})]


def test_decode_data_command_with_a_character_split_across_reads_is_decoded(hand_driven):
    wire = hand_driven(decode_data=True)
    wire.feed(b"HELO caf\xc3")
    wire.feed(b"\xa9\r\n")
    assert wire.client.greeting + wire.client.reply() == GREETING + b"250 " + FQDN + b"\r\n"
    assert wire.channel.seen_greeting == "caf\u00e9"


def test_decode_data_message_that_is_not_utf8_gets_554_and_ends_the_transaction(
    start_server, connect
):
    server = start_server(decode_data=True)
    client = connect(server)
    client.say(
        b"HELO client.example", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA"
    )
    replies = client.say(b"caf\xe9\r\n.", b"RCPT TO:<b@example.net>")
    assert replies == b"554 Error: message data is not valid UTF-8\r\n" + NEED_MAIL
    assert server.calls == []


# --------------------------------------------------------------------------
# 6. process_message raising, or replying with non-ASCII text


def test_process_message_raising_gets_451_and_the_next_message_is_taken(start_server, connect):
    server = start_server(outcomes=[RuntimeError("disk full")])
    client = connect(server)
    client.say(*ENVELOPE, b"DATA")
    assert client.say(b"first\r\n.") == LOCAL_ERROR
    replies = client.say(
        b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA", b"second\r\n."
    )
    assert replies == OK + OK + GO_AHEAD + OK
    assert [call[3] for call in server.calls] == [b"first", b"second"]


def test_process_message_raising_is_logged_with_its_traceback(start_server, connect):
    server = start_server(outcomes=[RuntimeError("disk full")])
    client = connect(server)
    client.say(*ENVELOPE, b"DATA", b"first\r\n.", b"QUIT")
    [(kind, message)] = server.logged
    assert kind == "error"
    assert message.startswith(
        "process_message raised RuntimeError: disk full; replied 451; traceback: ["
    )
    assert "|process_message|" in message


def test_process_message_reply_with_non_ascii_text_is_sent_escaped(start_server, connect):
    client = connect(start_server(outcomes=["250 Re\u00e7u"]))
    client.say(*ENVELOPE, b"DATA")
    assert client.say(b"body\r\n.", b"NOOP") == b"250 Re\\xe7u\r\n" + OK


def test_unimplemented_process_message_gets_451_then_leaves_handle_read(hand_driven):
    # SMTPServer's own process_message; CPython's test_process_message_unimplemented
    # wants its NotImplementedError out of handle_read(), so it still comes out.
    wire = hand_driven(server_class=smtpd.SMTPServer)
    wire.feed(
        b"HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    )
    with pytest.raises(NotImplementedError):
        wire.feed(b"body\r\n.\r\n")
    replies = b"".join(wire.client.reply() for _ in range(5))
    assert replies == b"250 " + FQDN + b"\r\n" + OK + OK + GO_AHEAD + LOCAL_ERROR


# --------------------------------------------------------------------------
# 7. PureProxy relays bytes and text, and answers with the relay's verdict


class SpyProxy(smtpd.PureProxy):
    """Keeps the message exactly as handed to smtplib."""

    def _deliver(self, mailfrom, rcpttos, data):
        self.relayed = data
        return super()._deliver(mailfrom, rcpttos, data)


class RefusingChannel(RecordingChannel):
    """Refuses recipients at nowhere.example."""

    def smtp_RCPT(self, arg):
        if arg and "@nowhere.example" in arg:
            self.push("550 No such user here")
        else:
            super().smtp_RCPT(arg)


class RefusingSink(Recorder):
    channel_class = RefusingChannel


def start_proxy(start_server, remote_port, **options):
    return start_server(SpyProxy, remoteaddr=("127.0.0.1", remote_port), **options)


def send_through(proxy, mailfrom, rcpttos, body, connect):
    """One message through ``proxy``; returns the reply to its end of data."""
    client = connect(proxy)
    client.say(b"EHLO client.example", b"MAIL FROM:<" + mailfrom + b">")
    for rcpt in rcpttos:
        client.say(b"RCPT TO:<" + rcpt + b">")
    client.say(b"DATA")
    client.send(body + b"\r\n.\r\n")
    return client.reply()


MESSAGE = b"From: a@example.org\r\nSubject: relayed\r\n\r\nline one\r\n..dot line"


def test_pure_proxy_relays_bytes_under_the_default_decode_data(start_server, connect):
    sink = start_server()
    proxy = start_proxy(start_server, port_of(sink))
    assert send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect) == OK
    [(peer, mailfrom, rcpttos, data, kwargs)] = sink.calls
    assert peer[0] == "127.0.0.1"
    assert (mailfrom, rcpttos, kwargs) == (
        "a@example.org",
        ["b@example.net"],
        {"mail_options": ["SIZE=79"], "rcpt_options": []},
    )
    assert (
        data == b"From: a@example.org\nSubject: relayed\nX-Peer: 127.0.0.1\n\nline one\n.dot line"
    )


def test_pure_proxy_hands_smtplib_crlf_line_ends(start_server, connect):
    # smtplib sends bytes as they are; a bare LF has no place in SMTP data.
    sink = start_server()
    proxy = start_proxy(start_server, port_of(sink))
    send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect)
    assert proxy.relayed == (
        b"From: a@example.org\r\nSubject: relayed\r\nX-Peer: 127.0.0.1\r\n"
        b"\r\nline one\r\n.dot line"
    )


def test_pure_proxy_relays_non_ascii_text_under_decode_data(start_server, connect):
    sink = start_server()
    proxy = start_proxy(start_server, port_of(sink), decode_data=True)
    body = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu".encode()
    assert send_through(proxy, b"a@example.org", [b"b@example.net"], body, connect) == OK
    [(_, _, _, data, _)] = sink.calls
    assert data == "Subject: caf\u00e9\nX-Peer: 127.0.0.1\n\nd\u00e9j\u00e0 vu".encode()


def test_pure_proxy_answers_451_when_the_relay_cannot_be_reached(start_server, connect):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        proxy = start_proxy(start_server, unused.getsockname()[1])
        reply = send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect)
    assert reply == b"451 Error: could not relay the message\r\n"


def test_pure_proxy_passes_on_the_relays_refusal_of_every_recipient(start_server, connect):
    sink = start_server(RefusingSink)
    proxy = start_proxy(start_server, port_of(sink))
    rcpttos = [b"x@nowhere.example", b"y@nowhere.example"]
    assert (
        send_through(proxy, b"a@example.org", rcpttos, MESSAGE, connect)
        == b"550 No such user here\r\n"
    )
    assert sink.calls == []


def test_pure_proxy_passes_on_the_relays_temporary_failure(start_server, connect):
    sink = start_server(outcomes=["452 Insufficient system storage"])
    proxy = start_proxy(start_server, port_of(sink))
    reply = send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect)
    assert reply == b"452 Insufficient system storage\r\n"


def test_pure_proxy_answers_250_when_some_recipients_took_the_message(start_server, connect):
    sink = start_server(RefusingSink)
    proxy = start_proxy(start_server, port_of(sink))
    rcpttos = [b"x@nowhere.example", b"b@example.net"]
    assert send_through(proxy, b"a@example.org", rcpttos, MESSAGE, connect) == OK
    assert [call[2] for call in sink.calls] == [["b@example.net"]]


# --------------------------------------------------------------------------
# 10. Nothing after QUIT runs


def test_commands_pipelined_after_quit_are_not_executed(start_server, connect):
    server = start_server()
    client = connect(server)
    client.say(*ENVELOPE)
    client.send(b"QUIT\r\nDATA\r\nbody\r\n.\r\n")
    assert client.rest() == BYE
    # CPython closed the socket before it ran DATA and process_message, so wait
    # for the loop to be done with that read: it serves one event at a time.
    assert connect(server).say(b"NOOP") == OK
    assert server.calls == []


# --------------------------------------------------------------------------
# Smaller ones


def test_refused_mail_with_smtputf8_leaves_replies_in_ascii(start_server, connect):
    # CPython turned SMTPUTF8 on before refusing the MAIL for its other parameter.
    client = connect(start_server(enable_SMTPUTF8=True))
    client.say(b"EHLO client.example")
    refused = client.say(b"MAIL FROM:<a@example.org> SMTPUTF8 FOO=1")
    assert refused == b"555 MAIL FROM parameters not recognized or not implemented\r\n"
    assert client.say("F\u00fc".encode()) == b'500 Error: command "F\\xdc" not recognized\r\n'


def test_refused_rcpt_leaves_the_rcpt_options_of_the_accepted_one(start_server, connect):
    server = start_server()
    client = connect(server)
    client.say(*ENVELOPE)
    refused = client.say(b"RCPT TO:<c@example.net> FOO=1")
    assert refused == b"555 RCPT TO parameters not recognized or not implemented\r\n"
    client.say(b"DATA", b"body\r\n.")
    assert [call[4] for call in server.calls] == [{"mail_options": [], "rcpt_options": []}]


def test_channel_refusing_decode_data_with_smtputf8_stays_out_of_the_map():
    socket_map = {}
    with socket.socket() as conn:
        with pytest.raises(
            ValueError,
            match=r"^decode_data and enable_SMTPUTF8 cannot be set to True at the same time$",
        ):
            smtpd.SMTPChannel(
                None, conn, None, map=socket_map, enable_SMTPUTF8=True, decode_data=True
            )
    assert socket_map == {}


class UnboundServer(smtpd.SMTPServer):
    """Records the socket calls instead of making them."""

    def create_socket(self, family, type):
        self.calls = [("create_socket", family, type)]

    def set_reuse_addr(self):
        pass

    def bind(self, addr):
        self.calls.append(("bind", addr))

    def listen(self, num):
        self.calls.append(("listen", num))


def test_ipv6_local_address_with_flowinfo_and_scope_id_is_accepted():
    # getaddrinfo is the real one; no IPv6 socket is made.
    server = UnboundServer(("::1", 8025, 0, 0), None, map={})
    assert server.calls == [
        ("create_socket", socket.AF_INET6, socket.SOCK_STREAM),
        ("bind", ("::1", 8025, 0, 0)),
        ("listen", smtpd._LISTEN_BACKLOG),
    ]


class PatientProxy(SpyProxy):
    relay_timeout = 0.5


def test_pure_proxy_answers_451_when_the_relay_never_answers(start_server, connect):
    assert smtpd.PureProxy.relay_timeout == 60.0
    with socket.socket() as silent:
        # Listening, so the connection is made (the kernel accepts it), but
        # nobody ever reads or greets: CPython's PureProxy waited for ever.
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        proxy = start_server(PatientProxy, remoteaddr=silent.getsockname())
        reply = send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect)
    assert reply == b"451 Error: could not relay the message\r\n"


def test_pure_proxy_without_a_remote_address_answers_451(start_server, connect):
    proxy = start_server(SpyProxy, remoteaddr=None)
    reply = send_through(proxy, b"a@example.org", [b"b@example.net"], MESSAGE, connect)
    assert reply == b"451 Error: could not relay the message\r\n"
