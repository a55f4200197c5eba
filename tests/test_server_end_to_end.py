"""End to end over real loopback sockets: SMTPServer subclasses driven by our own
asyncore loop in a background thread, fed by smtplib clients."""

import smtplib
import threading

import smtpd_compat as smtpd

CONNECTIONS = 10
MESSAGES_PER_CONNECTION = 20


class RecordingServer(smtpd.SMTPServer):
    """Keeps every process_message call, exactly as it was made."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.calls.append((peer, mailfrom, rcpttos, data, kwargs))


def recording_server(socket_map, **options):
    return RecordingServer(("127.0.0.1", 0), None, map=socket_map, **options)


def port_of(server):
    return server.socket.getsockname()[1]


def test_200_messages_over_10_concurrent_connections_all_arrive(run_in_thread):
    server = run_in_thread(recording_server)
    port = port_of(server)
    client_ports = {}
    failures = []

    def client(number):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                client_ports[number] = smtp.sock.getsockname()[1]
                for index in range(MESSAGES_PER_CONNECTION):
                    body = "Subject: %d.%d\r\n\r\nbody of %d.%d\r\n" % (
                        number,
                        index,
                        number,
                        index,
                    )
                    rcpt = ["to-%d@example.net" % number, "copy-%d@example.net" % index]
                    assert smtp.sendmail("from-%d@example.org" % number, rcpt, body) == {}
        except Exception as exc:  # collected; a failing thread must fail the test
            failures.append((number, exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []

    # Every acknowledged message arrived once, with its own envelope and peer.
    expected = sorted(
        (
            ("127.0.0.1", client_ports[n]),
            "from-%d@example.org" % n,
            ["to-%d@example.net" % n, "copy-%d@example.net" % i],
            # CPython's channel hands the body over with \n line ends.
            b"Subject: %d.%d\n\nbody of %d.%d" % (n, i, n, i),
            {
                "mail_options": [
                    "SIZE=%d" % len("Subject: %d.%d\r\n\r\nbody of %d.%d\r\n" % (n, i, n, i))
                ],
                "rcpt_options": [],
            },
        )
        for n in range(CONNECTIONS)
        for i in range(MESSAGES_PER_CONNECTION)
    )
    assert sorted(server.calls) == expected


def test_decode_data_server_receives_str_and_no_options(run_in_thread):
    server = run_in_thread(lambda m: recording_server(m, decode_data=True))
    with smtplib.SMTP("127.0.0.1", port_of(server), timeout=30) as smtp:
        smtp.sendmail(
            "a@example.org", ["b@example.net"], "Subject: caf\u00e9\r\n\r\nhi\r\n".encode()
        )
        peer = smtp.sock.getsockname()
    assert server.calls == [
        (peer, "a@example.org", ["b@example.net"], "Subject: caf\u00e9\n\nhi", {})
    ]


def test_pure_proxy_relays_into_a_second_server(run_in_thread):
    sink = run_in_thread(recording_server)
    proxy = run_in_thread(
        lambda m: smtpd.PureProxy(
            ("127.0.0.1", 0), ("127.0.0.1", port_of(sink)), map=m, decode_data=True
        )
    )
    message = "From: a@example.org\r\nSubject: relayed\r\n\r\nline one\r\nline two\r\n"
    with smtplib.SMTP("127.0.0.1", port_of(proxy), timeout=30) as smtp:
        assert smtp.sendmail("a@example.org", ["b@example.net", "c@example.net"], message) == {}
    # PureProxy relays inside process_message, before it answers: the sink
    # holds the message by the time the client's sendmail returns.
    [(peer, mailfrom, rcpttos, data, kwargs)] = sink.calls
    assert peer[0] == "127.0.0.1"
    assert (mailfrom, rcpttos) == ("a@example.org", ["b@example.net", "c@example.net"])
    # PureProxy adds the X-Peer header at the end of the headers.
    assert (
        data == b"From: a@example.org\nSubject: relayed\nX-Peer: 127.0.0.1\n\nline one\nline two"
    )
