"""The command-line twins of the extension options, run as
``python -m smtpd_compat`` subprocesses."""

import os
import smtplib
import subprocess
import sys

import pytest

from conftest import REPO
from extension_support import FQDN, WAIT_SECONDS, Client, greeting, timeout_reply
from smtpd_compat import cli

SERVER = [sys.executable, "-m", "smtpd_compat", "-n", "-c", "DebuggingServer"]


def start(start_process, *options):
    return start_process(SERVER + list(options) + ["127.0.0.1:0"])


def test_timeout_closes_a_silent_session_with_421(start_process):
    server = start(start_process, "--timeout", "0.3")
    with Client(server.port) as client:
        assert client.reply() == greeting()
        assert client.rest() == timeout_reply()


def test_max_connections_answers_one_too_many_with_421(start_process):
    server = start(start_process, "--max-connections", "1")
    with Client(server.port) as first:
        first.reply()
        with Client(server.port) as second:
            assert second.rest() == b"421 " + FQDN.encode() + b" Error: too many connections\r\n"


def test_tls_cert_and_key_offer_starttls(start_process, tls_files, client_context):
    server = start(start_process, "--tls-cert", tls_files[0], "--tls-key", tls_files[1])
    with smtplib.SMTP("127.0.0.1", server.port, timeout=WAIT_SECONDS) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        smtp.starttls(context=client_context)
        smtp.sendmail("a@example.org", ["b@example.org"], "Subject: tls\r\n\r\nover TLS")
    assert "b'over TLS'" in server.read_stdout_until("END MESSAGE")


def test_smtps_speaks_tls_from_the_first_byte(start_process, tls_files, client_context):
    server = start(start_process, "--tls-cert", tls_files[0], "--tls-key", tls_files[1], "--smtps")
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port, timeout=WAIT_SECONDS, context=client_context
    ) as smtp:
        assert not smtp.has_extn("starttls")
        smtp.sendmail("a@example.org", ["b@example.org"], "Subject: tls\r\n\r\nover SMTPS")
    assert "b'over SMTPS'" in server.read_stdout_until("END MESSAGE")


def test_require_starttls_refuses_mail_in_the_clear(start_process, tls_files):
    server = start(
        start_process, "--tls-cert", tls_files[0], "--tls-key", tls_files[1], "--require-starttls"
    )
    with Client(server.port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert (
            client.command(b"MAIL FROM:<a@example.org>")
            == b"530 Must issue a STARTTLS command first\r\n"
        )


def test_proxy_protocol_takes_the_peer_from_the_header(start_process):
    server = start(start_process, "--proxy-protocol")
    with Client(server.port) as client:
        client.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")
        client.reply()
        for line in (
            b"HELO me",
            b"MAIL FROM:<a@example.org>",
            b"RCPT TO:<b@example.org>",
            b"DATA",
        ):
            client.command(line)
        client.command(b"Subject: p\r\n\r\nbody\r\n.")
    assert "b'X-Peer: 192.0.2.7'" in server.read_stdout_until("END MESSAGE")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--timeout", "soon"], "Invalid timeout: soon\n"),
        (["--timeout", "0"], "Invalid timeout: 0\n"),
        (["--max-connections", "-1"], "Invalid max connections: -1\n"),
        (["--tls-key", "key.pem"], "--tls-key needs --tls-cert\n"),
        (["--smtps"], "--smtps needs --tls-cert\n"),
        (["--require-starttls"], "--require-starttls needs --tls-cert\n"),
    ],
)
def test_bad_extension_options_exit_1_with_a_message(arguments, message):
    done = subprocess.run(SERVER + arguments, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message)


def test_take_options_leaves_cpython_options_and_arguments_alone():
    short, longs = (
        "nVc:s:udh",
        ["nosetuid", "version", "class=", "size=", "smtputf8", "debug", "help"],
    )
    args = ["-n", "--timeout=5", "-c", "X", "--size", "10", "--proxy-protocol", "a:1", "b:2"]
    assert cli.take_options(args, short, longs) == (
        ["-n", "-c", "X", "--size", "10", "a:1", "b:2"],
        {"timeout": 5.0, "proxy_protocol": True},
    )


def test_take_options_without_our_options_changes_nothing():
    args = ["--smtp", "-h"]  # "--smtp" is CPython's --smtputf8, abbreviated
    assert cli.take_options(args, "nVc:s:udh", ["smtputf8", "help"]) == (args, {})


LEGACY_SINK = """
import smtpd_compat


class Sink(smtpd_compat.SMTPServer):
    # Written before the extensions: a fixed parameter list, no **kwargs.
    def __init__(self, localaddr, remoteaddr, data_size_limit=33554432,
                 map=None, enable_SMTPUTF8=False, decode_data=False):
        smtpd_compat.SMTPServer.__init__(self, localaddr, remoteaddr, data_size_limit,
                                         map, enable_SMTPUTF8, decode_data)
"""


def test_an_extension_option_for_a_class_that_cannot_take_it_exits_1_with_a_message(
    tmp_path,
):
    (tmp_path / "legacysink.py").write_text(LEGACY_SINK)
    done = subprocess.run(
        [sys.executable, "-m", "smtpd_compat", "-n", "-c", "legacysink.Sink"]
        + ["--timeout", "5", "--max-connections", "3", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO])),
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        (
            "Cannot start legacysink.Sink with max_connections, timeout: "
            "got an unexpected keyword argument 'timeout'\n"
        ),
    )
