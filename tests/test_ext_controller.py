"""``smtpd_compat.controller.Controller``: a server in a background thread."""

import smtplib
import socket

import pytest

import smtpd_compat
from extension_support import WAIT_SECONDS, Client, fds_open, greeting, send_message
from smtpd_compat.controller import Controller
from smtpd_compat.pytest_plugin import RecordingServer


def build(address, socket_map):
    return RecordingServer(address, None, map=socket_map)


def test_start_returns_with_the_port_listening():
    controller = Controller(build).start()
    try:
        assert controller.port != 0
        with Client(controller.port) as client:
            assert client.reply() == greeting()
    finally:
        controller.stop()


def test_the_controller_is_a_context_manager():
    with Controller(build) as controller:
        assert send_message(controller.port, "a@example.org", ["b@example.org"], "hi") == {}
        assert len(controller.server.messages) == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", controller.port), timeout=WAIT_SECONDS)


def test_an_smtpserver_subclass_can_be_given_instead_of_a_factory():
    with Controller(RecordingServer) as controller:
        assert isinstance(controller.server, RecordingServer)
        assert send_message(controller.port, "a@example.org", ["b@example.org"], "hi") == {}


def test_it_serves_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        controller = Controller(RecordingServer, host="::1").start()
    except OSError as error:
        pytest.skip("::1 is not available: %s" % error)
    try:
        with smtplib.SMTP("::1", controller.port, timeout=WAIT_SECONDS) as smtp:
            assert smtp.noop() == (250, b"OK")
    finally:
        controller.stop()


def test_stop_closes_every_socket_the_loop_owned(server_context, client_context):
    before = fds_open()

    def build_tls(address, socket_map):
        return RecordingServer(
            address, None, map=socket_map, starttls_context=server_context, timeout=30
        )

    controller = Controller(build_tls).start()
    # Sessions in every state: greeted, mid-DATA, mid-handshake.
    greeted, in_data, in_handshake = (Client(controller.port) for _ in range(3))
    for client in (greeted, in_data, in_handshake):
        client.reply()
    for line in (b"HELO me", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>", b"DATA"):
        in_data.command(line)
    in_handshake.command(b"STARTTLS")
    in_handshake.send(b"\x16\x03\x01")
    controller.stop()
    for client in (greeted, in_data, in_handshake):
        assert client.rest() == b""  # the server's end is closed
        client.close()
    assert fds_open() == before


def test_a_bind_error_is_raised_by_start():
    with Controller(build) as running:
        with pytest.raises(OSError):
            Controller(
                lambda address, socket_map: smtpd_compat.SMTPServer(address, None, map=socket_map),
                port=running.port,
            ).start()


def test_stop_before_start_does_nothing():
    Controller(build).stop()


def test_starting_twice_is_an_error():
    with Controller(build) as controller:
        with pytest.raises(RuntimeError):
            controller.start()


def test_abrupt_resets_in_the_middle_of_data_lose_nothing_acknowledged():
    # Hostile: 50 clients that reset their connections half-way through DATA.
    with Controller(build) as controller:
        for index in range(50):
            client = Client(controller.port)
            client.reply()
            for line in (
                b"HELO me",
                b"MAIL FROM:<reset@example.org>",
                b"RCPT TO:<b@example.org>",
                b"DATA",
            ):
                client.command(line)
            client.send(b"Subject: half\r\n\r\nhalf a message %d" % index)
            client.abort()
            assert (
                send_message(
                    controller.port, "good@example.org", ["b@example.org"], "good %d" % index
                )
                == {}
            )
        senders = [message.mailfrom for message in controller.server.messages]
    assert senders == ["good@example.org"] * 50
