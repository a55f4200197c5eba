"""TLS: STARTTLS (RFC 3207) with ``starttls_context``, TLS from the first
byte with ``ssl_context``; handshakes run inside the loop."""

import smtplib
import socket

import pytest

from extension_support import (
    FQDN,
    WAIT_SECONDS,
    Client,
    greeting,
    implicit_tls_client,
    send_message,
)
from smtpd_compat import tls
from smtpd_compat.pytest_plugin import RecordingServer

EHLO_BEFORE_TLS = (
    b"250-" + FQDN.encode() + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
    b"250-STARTTLS\r\n250 HELP\r\n"
)
EHLO_AFTER_TLS = b"250-" + FQDN.encode() + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n"


@pytest.fixture
def starttls_server(serve, server_context):
    return serve(starttls_context=server_context)


def tls_session(port, client_context):
    """A Client that has greeted, sent STARTTLS and finished the handshake."""
    client = Client(port)
    client.reply()
    client.command(b"EHLO me")
    assert client.command(b"STARTTLS") == b"220 Ready to start TLS\r\n"
    client.starttls(client_context)
    return client


def test_ehlo_offers_starttls_before_tls(starttls_server):
    with Client(starttls_server.port) as client:
        client.reply()
        assert client.command(b"EHLO me") == EHLO_BEFORE_TLS


def test_starttls_is_answered_220_ready_to_start_tls(starttls_server):
    with Client(starttls_server.port) as client:
        client.reply()
        assert client.command(b"STARTTLS") == b"220 Ready to start TLS\r\n"


def test_after_starttls_ehlo_is_needed_again_and_no_longer_offers_starttls(
    starttls_server, client_context
):
    with tls_session(starttls_server.port, client_context) as client:
        assert client.command(b"MAIL FROM:<a@example.org>") == b"503 Error: send HELO first\r\n"
        assert client.command(b"EHLO me") == EHLO_AFTER_TLS


def test_starttls_discards_a_transaction_begun_before_it(starttls_server, client_context):
    client = Client(starttls_server.port)
    client.reply()
    client.command(b"EHLO me")
    assert client.command(b"MAIL FROM:<a@example.org>") == b"250 OK\r\n"
    client.command(b"STARTTLS")
    client.starttls(client_context)
    with client:
        client.command(b"EHLO me")
        assert client.command(b"RCPT TO:<b@example.org>") == b"503 Error: need MAIL command\r\n"


def test_starttls_with_an_argument_is_a_syntax_error(starttls_server):
    with Client(starttls_server.port) as client:
        client.reply()
        assert client.command(b"STARTTLS now") == b"501 Syntax error (no parameters allowed)\r\n"


def test_starttls_inside_tls_is_refused_with_503(starttls_server, client_context):
    with tls_session(starttls_server.port, client_context) as client:
        client.command(b"EHLO me")
        assert client.command(b"STARTTLS") == b"503 Error: TLS already active\r\n"


def test_commands_pipelined_after_starttls_in_the_clear_are_dropped(
    starttls_server, client_context
):
    client = Client(starttls_server.port)
    client.reply()
    client.command(b"EHLO me")
    client.send(b"STARTTLS\r\nNOOP\r\nNOOP\r\n")
    assert client.reply() == b"220 Ready to start TLS\r\n"
    client.starttls(client_context)
    with client:
        # The first reply under TLS answers the first command sent under TLS.
        assert client.command(b"EHLO me") == EHLO_AFTER_TLS


def test_smtplib_starttls_delivers_a_message(starttls_server, client_context):
    with smtplib.SMTP("127.0.0.1", starttls_server.port, timeout=WAIT_SECONDS) as smtp:
        smtp.starttls(context=client_context)
        assert smtp.sendmail("a@example.org", ["b@example.org"], "Subject: s\r\n\r\nsecret") == {}
    assert [m.data for m in starttls_server.server.messages] == [b"Subject: s\n\nsecret"]


def test_require_starttls_refuses_mail_before_tls_with_530(serve, server_context):
    port = serve(starttls_context=server_context, require_starttls=True).port
    with Client(port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert (
            client.command(b"MAIL FROM:<a@example.org>")
            == b"530 Must issue a STARTTLS command first\r\n"
        )
        assert client.command(b"NOOP") == b"250 OK\r\n"


def test_require_starttls_accepts_mail_after_tls(serve, server_context, client_context):
    controller = serve(starttls_context=server_context, require_starttls=True)
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=WAIT_SECONDS) as smtp:
        smtp.starttls(context=client_context)
        assert smtp.sendmail("a@example.org", ["b@example.org"], "hi") == {}
    assert len(controller.server.messages) == 1


def test_implicit_tls_greets_after_the_handshake(serve, server_context, client_context):
    port = serve(ssl_context=server_context).port
    with implicit_tls_client(port, client_context) as client:
        assert client.reply() == greeting()
        assert client.command(b"EHLO me") == EHLO_AFTER_TLS


def test_smtplib_smtp_ssl_delivers_a_message(serve, server_context, client_context):
    controller = serve(ssl_context=server_context)
    with smtplib.SMTP_SSL(
        "127.0.0.1", controller.port, timeout=WAIT_SECONDS, context=client_context
    ) as smtp:
        assert smtp.sendmail("a@example.org", ["b@example.org"], "Subject: s\r\n\r\nsecret") == {}
    assert [m.data for m in controller.server.messages] == [b"Subject: s\n\nsecret"]


class TLSReportingServer(RecordingServer):
    """NOOP also records the TLS version the channel's connection uses."""

    class channel_class(RecordingServer.channel_class):
        def smtp_NOOP(self, arg):
            self.smtp_server.versions.append(self.connection.tls.version())
            self.push("250 OK")

    def __init__(self, *args, **kwargs):
        self.versions = []
        RecordingServer.__init__(self, *args, **kwargs)


def test_the_channel_sees_its_tls_connection(serve, server_context, client_context):
    controller = serve(server_class=TLSReportingServer, ssl_context=server_context)
    with implicit_tls_client(controller.port, client_context) as client:
        client.reply()
        assert client.command(b"NOOP") == b"250 OK\r\n"
        assert controller.server.versions == [client.sock.version()]


def test_a_stalled_handshake_does_not_hold_up_other_sessions(
    serve, server_context, client_context
):
    # Hostile: a client that connects to the SMTPS port and sends half a
    # ClientHello, then nothing.
    controller = serve(ssl_context=server_context)
    stalled = socket.create_connection(("127.0.0.1", controller.port), timeout=WAIT_SECONDS)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        for index in range(3):
            with smtplib.SMTP_SSL(
                "127.0.0.1", controller.port, timeout=WAIT_SECONDS, context=client_context
            ) as smtp:
                assert smtp.sendmail("a@example.org", ["b@example.org"], "n%d" % index) == {}
    finally:
        stalled.close()
    assert [m.data for m in controller.server.messages] == [b"n0", b"n1", b"n2"]


def test_a_stalled_starttls_handshake_does_not_hold_up_other_sessions(
    starttls_server, client_context
):
    with Client(starttls_server.port) as stalled:
        stalled.reply()
        stalled.command(b"STARTTLS")
        stalled.send(b"\x16\x03\x01")
        assert send_message(starttls_server.port, "a@example.org", ["b@example.org"], "hi") == {}
    assert len(starttls_server.server.messages) == 1


def test_a_stalled_handshake_is_dropped_at_the_timeout(serve, server_context):
    port = serve(ssl_context=server_context, timeout=0.3).port
    with Client(port) as stalled:
        stalled.send(b"\x16\x03\x01")
        assert stalled.rest() == b""  # closed, with no plain-text reply


def test_a_stalled_starttls_handshake_is_dropped_at_the_timeout(serve, server_context):
    port = serve(starttls_context=server_context, timeout=0.3).port
    with Client(port) as stalled:
        stalled.reply()
        stalled.command(b"STARTTLS")
        assert stalled.rest() == b""


def test_a_failed_handshake_closes_only_that_connection(serve, server_context, client_context):
    controller = serve(ssl_context=server_context)
    with Client(controller.port) as plain:
        plain.send(b"EHLO this is not TLS\r\n")
        assert plain.rest()[:1] in (b"", b"\x15")  # nothing, or a TLS alert
    with smtplib.SMTP_SSL(
        "127.0.0.1", controller.port, timeout=WAIT_SECONDS, context=client_context
    ) as smtp:
        assert smtp.noop() == (250, b"OK")


def test_tlssocket_reports_want_read_as_blockingioerror():
    class Stalled:
        def recv(self, size):
            import ssl

            raise ssl.SSLWantReadError()

        def pending(self):
            return 0

    with pytest.raises(BlockingIOError):
        tls.TLSSocket(Stalled()).recv(10)
