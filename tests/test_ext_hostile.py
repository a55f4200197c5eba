"""Hostile clients against a server with every extension on: each misbehaves
while a well-behaved client (STARTTLS, AUTH, several messages) goes on, and
every message the server acknowledged is delivered, exactly once."""

import smtplib
import threading

import pytest

from extension_support import WAIT_SECONDS, Client, greeting, timeout_reply
from smtpd_compat import auth

TIMEOUT = 1.0
GOOD_MESSAGES = 10


@pytest.fixture
def fortified(serve, server_context):
    return serve(
        timeout=TIMEOUT,
        max_connections=200,
        starttls_context=server_context,
        authenticator=auth.PasswordCheck({"alice": "wonderland"}),
    )


def in_data(port):
    client = Client(port)
    client.reply()
    for line in (
        b"HELO me",
        b"MAIL FROM:<hostile@example.org>",
        b"RCPT TO:<b@example.org>",
        b"DATA",
    ):
        client.command(line)
    return client


def slow_drip(port):
    with in_data(port) as client:
        for byte in b"Subject: drip\r\n\r\nthen silence":
            client.send(bytes([byte]))
        assert client.rest() == timeout_reply()


def garbage_lines(port):
    with Client(port) as client:
        client.reply()
        client.send(b"".join(b"XYZZY%d junk\r\n" % n for n in range(10000)))
        for n in range(10000):
            assert client.reply() == b'500 Error: command "XYZZY%d" not recognized\r\n' % n
        assert client.command(b"NOOP") == b"250 OK\r\n"


def megabyte_line(port):
    with Client(port) as client:
        client.reply()
        client.send(b"A" * (1 << 20))
        assert client.command(b"") == b"500 Error: line too long\r\n"
        assert client.command(b"NOOP") == b"250 OK\r\n"


def megabyte_line_never_ended(port):
    with Client(port) as client:
        client.reply()
        client.send(b"MAIL FROM:<" + b"A" * (1 << 20))
        assert client.rest() == timeout_reply()


def half_open_tls_handshake(port):
    with Client(port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert client.command(b"STARTTLS") == b"220 Ready to start TLS\r\n"
        client.send(b"\x16\x03\x01\x02\x00\x01\x00")
        assert client.rest() == b""  # dropped at the timeout, unanswered


def resets_in_data(port):
    for index in range(50):
        client = in_data(port)
        client.send(b"Subject: reset\r\n\r\npart of message %d" % index)
        client.abort()


HOSTILE = [
    slow_drip,
    garbage_lines,
    megabyte_line,
    megabyte_line_never_ended,
    half_open_tls_handshake,
    resets_in_data,
]


def send_good_messages(port, client_context):
    acknowledged = []
    for index in range(GOOD_MESSAGES):
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_SECONDS) as smtp:
            smtp.starttls(context=client_context)
            smtp.login("alice", "wonderland")
            body = "Subject: good %d\r\n\r\nwell behaved" % index
            if smtp.sendmail("good@example.org", ["b@example.org"], body) == {}:
                acknowledged.append(body.replace("\r\n", "\n").encode())
    return acknowledged


def run_concurrently(functions):
    failures = []

    def run(function):
        try:
            function()
        except BaseException as error:  # collected: a failing thread fails the test
            failures.append((function, error))

    threads = [threading.Thread(target=run, args=(function,)) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a client never finished"
    assert failures == []


def good_messages_delivered(controller):
    return [(message.data, message.kwargs["login"]) for message in controller.server.messages]


@pytest.mark.parametrize("hostile", HOSTILE, ids=[function.__name__ for function in HOSTILE])
def test_a_hostile_client_leaves_a_well_behaved_one_served(fortified, client_context, hostile):
    acknowledged = []
    run_concurrently(
        [
            lambda: hostile(fortified.port),
            lambda: acknowledged.extend(send_good_messages(fortified.port, client_context)),
        ]
    )
    assert len(acknowledged) == GOOD_MESSAGES
    assert good_messages_delivered(fortified) == [(body, "alice") for body in acknowledged]


def test_all_hostile_clients_at_once_leave_a_well_behaved_one_served(fortified, client_context):
    acknowledged = []
    run_concurrently(
        [lambda hostile=hostile: hostile(fortified.port) for hostile in HOSTILE]
        + [lambda: acknowledged.extend(send_good_messages(fortified.port, client_context))]
    )
    assert len(acknowledged) == GOOD_MESSAGES
    assert good_messages_delivered(fortified) == [(body, "alice") for body in acknowledged]
    # And once they are all gone, a new session is served as the first was.
    with Client(fortified.port) as client:
        assert client.reply() == greeting()
