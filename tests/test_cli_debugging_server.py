"""End to end: ``python -m smtpd_compat -n -c DebuggingServer 127.0.0.1:0`` as a user
runs it, receiving real mail from smtplib, its printed output checked line for line.

Each test runs against our command line and, where a CPython <= 3.11 is found,
against ``python -m smtpd`` itself, so the expected text is CPython's. Where the
two differ on purpose, each one's text is given, under the name of the difference
(README.rst, "Differences from CPython's smtpd").
"""

import smtplib

import pytest

MESSAGE = (
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Hello\r\n"
    "\r\n"
    "First line.\r\n"
    ".Leading dot.\r\n"
    "\r\n"
    "Last line.\r\n"
)

PRINTED_BODY = (
    "b'From: Alice <alice@example.org>'\n"
    "b'To: bob@example.net'\n"
    "b'Subject: Hello'\n"
    "b'X-Peer: 127.0.0.1'\n"
    "b''\n"
    "b'First line.'\n"
    "b'.Leading dot.'\n"
    "b''\n"
    "b'Last line.'\n"
)
BEGIN = "---------- MESSAGE FOLLOWS ----------\n"
END = "------------ END MESSAGE ------------\n"

# Divergence "-s defaults to 33554432": without -s our server has the limit that
# --help documents, so it offers SIZE and smtplib puts SIZE=<message length> first
# among the MAIL options, which DebuggingServer prints; CPython's has no limit,
# offers no SIZE, and smtplib sends none.
MAIL_OPTIONS_WITHOUT_DASH_S = {
    "smtpd_compat": "mail options: ['SIZE=114']\n",
    "cpython": "",
}


@pytest.fixture
def implementation(smtpd_command):
    """Which server ``smtpd_command`` runs: "smtpd_compat" or "cpython"."""
    return "smtpd_compat" if smtpd_command[-1] == "smtpd_compat" else "cpython"


@pytest.fixture
def debugging_server(smtpd_command, start_process):
    def start(*options):
        argv = smtpd_command + ["-n", "-c", "DebuggingServer", *options, "127.0.0.1:0"]
        return start_process(argv)

    return start


def send(port, *args, **kwargs):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        refused = client.sendmail(*args, **kwargs)
        client.quit()
    return refused


def assert_clean_interrupt(server, expected_stdout):
    status, stdout, stderr = server.interrupt()
    assert (status, stderr) == (0, "")
    assert stdout == expected_stdout


def test_plain_message_is_printed_with_x_peer_and_dots_unstuffed(debugging_server, implementation):
    server = debugging_server()
    refused = send(
        server.port, "alice@example.org", ["bob@example.net", "carol@example.net"], MESSAGE
    )
    assert refused == {}
    expected = BEGIN + MAIL_OPTIONS_WITHOUT_DASH_S[implementation] + PRINTED_BODY + END
    assert server.read_stdout_until(END) == expected
    assert_clean_interrupt(server, expected)


def test_with_dash_s_given_both_print_smtplibs_size_option(debugging_server):
    # With -s given the two agree: both offer SIZE, so smtplib sends SIZE=<length>.
    server = debugging_server("-s", "1000")
    send(server.port, "alice@example.org", ["bob@example.net"], MESSAGE)
    expected = BEGIN + "mail options: ['SIZE=114']\n" + PRINTED_BODY + END
    assert server.read_stdout_until(END) == expected


def test_size_parameter_is_printed_among_the_mail_options(debugging_server, implementation):
    server = debugging_server()
    send(server.port, "alice@example.org", ["bob@example.net"], MESSAGE, mail_options=["size=200"])
    # Divergence "-s defaults to 33554432" (see MAIL_OPTIONS_WITHOUT_DASH_S).
    printed_options = {
        "smtpd_compat": "mail options: ['SIZE=114', 'SIZE=200']\n",
        "cpython": "mail options: ['SIZE=200']\n",
    }[implementation]
    expected = BEGIN + printed_options + PRINTED_BODY + END
    assert server.read_stdout_until(END) == expected


def test_size_over_the_limit_set_with_dash_s_is_refused_with_552(debugging_server):
    server = debugging_server("-s", "100")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo("client.example")
        assert "size" in client.esmtp_features
        assert client.esmtp_features["size"] == "100"
        assert client.mail("alice@example.org", ["SIZE=101"]) == (
            552,
            b"Error: message size exceeds fixed maximum message size",
        )


def test_8bitmime_body_is_printed_with_its_mail_option(debugging_server, implementation):
    server = debugging_server()
    body = MESSAGE.replace("Last line.", "Caf\u00e9.").encode("utf-8")
    send(
        server.port, "alice@example.org", ["bob@example.net"], body, mail_options=["BODY=8BITMIME"]
    )
    printed = PRINTED_BODY.replace("b'Last line.'", "b'Caf\\xc3\\xa9.'")
    # Divergence "-s defaults to 33554432" (see MAIL_OPTIONS_WITHOUT_DASH_S).
    printed_options = {
        "smtpd_compat": "mail options: ['SIZE=110', 'BODY=8BITMIME']\n",
        "cpython": "mail options: ['BODY=8BITMIME']\n",
    }[implementation]
    expected = BEGIN + printed_options + printed + END
    assert server.read_stdout_until(END) == expected


def test_smtputf8_mail_under_dash_u(debugging_server, implementation):
    server = debugging_server("-u")
    body = MESSAGE.replace("bob@example.net", "b\u00f6b@example.net").encode("utf-8")
    send(
        server.port,
        "al\u00efce@example.org",
        ["b\u00f6b@example.net"],
        body,
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    printed = PRINTED_BODY.replace("b'To: bob@example.net'", "b'To: b\\xc3\\xb6b@example.net'")
    # Divergence "-s defaults to 33554432" (see MAIL_OPTIONS_WITHOUT_DASH_S).
    printed_options = {
        "smtpd_compat": "mail options: ['SIZE=115', 'SMTPUTF8', 'BODY=8BITMIME']\n",
        "cpython": "mail options: ['SMTPUTF8', 'BODY=8BITMIME']\n",
    }[implementation]
    expected = BEGIN + printed_options + printed + END
    assert server.read_stdout_until(END) == expected


def test_smtputf8_is_refused_without_dash_u(debugging_server):
    server = debugging_server()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo("client.example")
        assert "smtputf8" not in client.esmtp_features
        assert client.docmd("MAIL FROM:<alice@example.org> SMTPUTF8") == (
            555,
            b"MAIL FROM parameters not recognized or not implemented",
        )
