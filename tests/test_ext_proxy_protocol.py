"""``proxy_protocol=True``: a PROXY header (v1 or v2) names the client; a
missing or malformed one closes the connection unanswered."""

import smtplib
import socket
import struct

import pytest

from extension_support import WAIT_SECONDS, Client, greeting
from smtpd_compat import proxy_protocol
from smtpd_compat.proxy_protocol import Header, HeaderError, parse

V2 = proxy_protocol.V2_SIGNATURE


def v2_header(command=0x21, family=0x11, addresses=b"", extra=b""):
    body = addresses + extra
    return V2 + struct.pack("!BBH", command, family, len(body)) + body


V2_IPV4 = v2_header(
    addresses=socket.inet_aton("192.0.2.7")
    + socket.inet_aton("198.51.100.1")
    + struct.pack("!HH", 40000, 25)
)
V2_IPV6 = v2_header(
    family=0x21,
    addresses=socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    + struct.pack("!HH", 40000, 25),
)


# -- the parser ------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n",
            (44, Header(1, ("192.0.2.7", 40000), ("198.51.100.1", 25))),
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\nEHLO",
            (45, Header(1, ("2001:db8::7", 40000, 0, 0), ("2001:db8::1", 25, 0, 0))),
        ),
        (b"PROXY UNKNOWN whatever follows\r\n", (32, Header(1, None, None))),
        (V2_IPV4, (28, Header(2, ("192.0.2.7", 40000), ("198.51.100.1", 25)))),
        (
            V2_IPV6 + b"\x16\x03",
            (52, Header(2, ("2001:db8::7", 40000, 0, 0), ("2001:db8::1", 25, 0, 0))),
        ),
        (v2_header(command=0x20), (16, Header(2, None, None))),  # LOCAL
        (
            V2_IPV4[:14] + b"\x00\x1c" + V2_IPV4[16:] + b"\x04" * 16,  # with TLVs
            (44, Header(2, ("192.0.2.7", 40000), ("198.51.100.1", 25))),
        ),
    ],
)
def test_parse_reads_a_whole_header(data, expected):
    assert parse(data) == expected


@pytest.mark.parametrize("data", [b"", b"PRO", b"PROXY TCP4 192.0.2.7", V2[:7], V2_IPV4[:20]])
def test_parse_returns_none_for_the_beginning_of_a_header(data):
    assert parse(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"EHLO me\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n",  # a field missing
        b"PROXY TCP4 2001:db8::7 198.51.100.1 40000 25\r\n",  # wrong family
        b"PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n",  # leading zero
        b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 25\r\n",  # port too big
        b"PROXY TCP4  192.0.2.7 198.51.100.1 40000 25\r\n",  # two spaces
        b"PROXY TCP5 192.0.2.7 198.51.100.1 40000 25\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n",  # bare LF
        b"PROXY " + b"X" * 200,  # never ends
        V2[:12] + b"\x31\x11\x00\x0c" + b"\x00" * 12,  # version 3
        V2[:12] + b"\x22\x11\x00\x0c" + b"\x00" * 12,  # command 2
        v2_header(addresses=b"\x00" * 8),  # address block short
        v2_header(family=0x12, addresses=b"\x00" * 12),  # UDP
    ],
)
def test_parse_refuses_what_cannot_be_a_header(data):
    with pytest.raises(HeaderError):
        parse(data)


# -- end to end --------------------------------------------------------------


@pytest.fixture
def proxied(serve):
    return serve(proxy_protocol=True)


@pytest.mark.parametrize(
    "header, peer",
    [
        (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", ("192.0.2.7", 40000)),
        (V2_IPV4, ("192.0.2.7", 40000)),
        (V2_IPV6, ("2001:db8::7", 40000, 0, 0)),
    ],
)
def test_the_header_names_the_peer_given_to_process_message(proxied, header, peer):
    with Client(proxied.port) as client:
        client.send(header)
        assert client.reply() == greeting()
        for line in (
            b"HELO me",
            b"MAIL FROM:<a@example.org>",
            b"RCPT TO:<b@example.org>",
            b"DATA",
        ):
            client.command(line)
        assert client.command(b"hi\r\n.") == b"250 OK\r\n"
    assert proxied.server.messages[0].peer == peer


@pytest.mark.parametrize("header", [b"PROXY UNKNOWN\r\n", v2_header(command=0x20)])
def test_unknown_and_local_headers_keep_the_real_peer(proxied, header):
    with Client(proxied.port) as client:
        client.send(header)
        client.reply()
        client.command(b"HELO me")
        client.command(b"MAIL FROM:<a@example.org>")
        client.command(b"RCPT TO:<b@example.org>")
        client.command(b"DATA")
        client.command(b"hi\r\n.")
        assert proxied.server.messages[0].peer == client.sock.getsockname()


def test_a_header_sent_a_byte_at_a_time_is_read(proxied):
    with Client(proxied.port) as client:
        for byte in b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n":
            client.send(bytes([byte]))
        assert client.reply() == greeting()


def test_a_malformed_header_closes_the_connection_unanswered(proxied):
    with Client(proxied.port) as client:
        client.send(b"PROXY TCP4 192.0.2.7 nonsense\r\n")
        assert client.rest() == b""


def test_a_missing_header_closes_the_connection_unanswered(proxied):
    with Client(proxied.port) as client:
        client.send(b"EHLO me\r\n")
        assert client.rest() == b""


def test_a_client_that_sends_no_header_is_dropped_at_the_timeout(serve):
    with Client(serve(proxy_protocol=True, timeout=0.3).port) as client:
        assert client.rest() == b""


def test_a_header_can_precede_implicit_tls(serve, server_context, client_context):
    controller = serve(proxy_protocol=True, ssl_context=server_context)
    raw = socket.create_connection(("127.0.0.1", controller.port), timeout=WAIT_SECONDS)
    raw.sendall(V2_IPV4)
    with smtplib.SMTP_SSL(timeout=WAIT_SECONDS, context=client_context) as smtp:
        smtp.sock = client_context.wrap_socket(raw, server_hostname="127.0.0.1")
        smtp.file = None
        assert smtp.getreply()[0] == 220
        assert smtp.sendmail("a@example.org", ["b@example.org"], "hi") == {}
    assert controller.server.messages[0].peer == ("192.0.2.7", 40000)


def test_garbage_instead_of_headers_leaves_the_server_serving(proxied):
    # Hostile: a megabyte of junk, a header that never ends, and 200
    # connections that hang up half-way through a header.
    with Client(proxied.port) as junk:
        try:
            junk.send(b"\xff" * (1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert junk.rest() == b""
    with Client(proxied.port) as endless:
        endless.send(b"PROXY TCP4 " + b"1" * 200)
        assert endless.rest() == b""
    for _ in range(200):
        with Client(proxied.port) as quitter:
            quitter.send(V2_IPV4[:20])
            quitter.sock.shutdown(socket.SHUT_WR)
            assert quitter.rest() == b""
    with Client(proxied.port) as client:
        client.send(V2_IPV4)
        assert client.reply() == greeting()
