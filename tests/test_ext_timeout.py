"""``timeout=SECONDS``: a session silent for that long is sent
``421 <fqdn> Error: timeout exceeded`` and closed; other sessions go on.

The timeouts are short and the tests wait for the server's reply or EOF
(each read bounded), never sleeping to synchronise."""

import select

from extension_support import Client, greeting, send_message, timeout_reply

TIMEOUT = 0.3


def test_a_client_silent_after_the_greeting_gets_421_and_is_closed(serve):
    with Client(serve(timeout=TIMEOUT).port) as client:
        assert client.reply() == greeting()
        assert client.rest() == timeout_reply()


def test_a_client_stalled_in_the_middle_of_a_command_gets_421(serve):
    with Client(serve(timeout=TIMEOUT).port) as client:
        client.reply()
        client.send(b"EHLO half-a-li")
        assert client.rest() == timeout_reply()


def test_a_slow_drip_client_stalled_in_data_gets_421_and_nothing_is_delivered(serve):
    controller = serve(timeout=TIMEOUT)
    with Client(controller.port) as client:
        client.reply()
        for line in (
            b"HELO me",
            b"MAIL FROM:<a@example.org>",
            b"RCPT TO:<b@example.org>",
            b"DATA",
        ):
            client.command(line)
        for byte in b"Subject: dripping\r\n\r\none byte at a time":
            client.send(bytes([byte]))
        assert client.rest() == timeout_reply()
    assert controller.server.messages == []


def test_a_session_that_keeps_talking_outlives_a_silent_one(serve):
    port = serve(timeout=TIMEOUT).port
    with Client(port) as talker, Client(port) as silent:
        talker.reply()
        silent.reply()
        # The talker sends NOOPs until the silent one has been timed out:
        # by then the talker is older than the timeout, yet still served.
        for _ in range(2000):
            assert talker.command(b"NOOP") == b"250 OK\r\n"
            if select.select([silent.sock], [], [], 0.01)[0]:
                break
        assert silent.rest() == timeout_reply()
        assert talker.command(b"NOOP") == b"250 OK\r\n"


def test_a_message_sent_without_pauses_is_delivered_under_a_timeout(serve):
    controller = serve(timeout=TIMEOUT)
    assert (
        send_message(controller.port, "a@example.org", ["b@example.org"], "Subject: x\r\n\r\nhi")
        == {}
    )
    assert [m.data for m in controller.server.messages] == [b"Subject: x\n\nhi"]


def test_closing_the_server_leaves_no_helper_in_the_map():
    import smtpd_compat

    socket_map = {}
    server = smtpd_compat.SMTPServer(("127.0.0.1", 0), None, map=socket_map, timeout=TIMEOUT)
    assert len(socket_map) == 2  # the server, and the deadlines' waker
    server.close()
    assert socket_map == {}


def test_after_the_server_closes_the_loop_ends_with_its_last_session():
    import threading

    import smtpd_compat
    from smtpd_compat import asyncore

    socket_map = {}
    server = smtpd_compat.SMTPServer(("127.0.0.1", 0), None, map=socket_map, timeout=TIMEOUT)
    with Client(server.socket.getsockname()[1]) as client:
        asyncore.loop(timeout=0.05, map=socket_map, count=5)  # accept and greet
        server.close()
        loop = threading.Thread(target=asyncore.loop, kwargs={"timeout": 30, "map": socket_map})
        loop.start()
        assert client.reply() == greeting()
        assert client.rest() == timeout_reply()
        loop.join(10)
        assert not loop.is_alive()
    assert socket_map == {}
