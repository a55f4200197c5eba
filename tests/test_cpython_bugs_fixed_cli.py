"""Faults of CPython's ``python -m smtpd`` that ``python -m smtpd_compat`` fixes, one
behaviour per test (README.rst, "Differences from CPython's smtpd")."""

import errno
import os
import smtplib
import socket
import subprocess
import sys

import pytest

import smtpd_compat
from conftest import REPO

OUR_COMMAND = [sys.executable, "-m", "smtpd_compat"]


def run(*arguments):
    """Run our command line to its end; returns (status, stdout, stderr)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(
        OUR_COMMAND + list(arguments), capture_output=True, text=True, timeout=30, env=env
    )
    return done.returncode, done.stdout, done.stderr


def parse(monkeypatch, *arguments):
    monkeypatch.setattr(sys, "argv", ["smtpd"] + list(arguments))
    return smtpd_compat.parseargs()


# --------------------------------------------------------------------------
# -s defaults to 33554432, as --help says


def test_without_dash_s_the_documented_size_limit_applies(start_process):
    server = start_process(OUR_COMMAND + ["-n", "-c", "DebuggingServer", "127.0.0.1:0"])
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo("client.example")
        assert client.esmtp_features["size"] == "33554432"
        assert client.mail("a@example.org", ["SIZE=33554433"]) == (
            552,
            b"Error: message size exceeds fixed maximum message size",
        )


def test_parseargs_gives_the_documented_size_limit_by_default(monkeypatch):
    assert parse(monkeypatch, "-n").size_limit == 33554432


def test_dash_s_0_means_no_limit(monkeypatch):
    # RFC 1870: "SIZE 0" announces no fixed maximum; the server then offers none.
    assert parse(monkeypatch, "-s", "0").size_limit == 0


def test_negative_size_is_refused_with_exit_status_1():
    assert run("-n", "-s", "-5") == (1, "", "Invalid size: -5\n")


# --------------------------------------------------------------------------
# IPv6 addresses in brackets


def test_bracketed_ipv6_addresses_are_accepted_for_both_ends(monkeypatch):
    options = parse(monkeypatch, "-n", "[::1]:8025", "[fe80::1%eth0]:25")
    assert (options.localhost, options.localport) == ("::1", 8025)
    assert (options.remotehost, options.remoteport) == ("fe80::1%eth0", 25)


@pytest.mark.parametrize("spec", ["[::1]", "[::1]8025", "[::1"])
def test_bracketed_address_without_a_port_is_a_bad_spec(monkeypatch, capsys, spec):
    with pytest.raises(SystemExit) as exited:
        parse(monkeypatch, "-n", spec)
    assert exited.value.code == 1
    assert capsys.readouterr().err.endswith("\nBad local spec: %s\n" % spec)


def test_bracketed_address_with_a_bad_port_is_a_bad_port(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(monkeypatch, "-n", "127.0.0.1:8025", "[::1]:smtp")
    assert exited.value.code == 1
    assert capsys.readouterr().err.endswith("\nBad remote port: [::1]:smtp\n")


# --------------------------------------------------------------------------
# Start-up failures: a message and exit status 1, not a traceback


def test_smtputf8_with_the_default_pure_proxy_exits_1_with_a_message():
    expected = "Cannot start PureProxy: PureProxy does not support SMTPUTF8.\n"
    assert run("-n", "-u", "127.0.0.1:0") == (1, "", expected)


def test_unknown_class_exits_1_with_a_message():
    expected = (
        "Cannot find class \"NoSuchServer\": "
        "module 'smtpd_compat' has no attribute 'NoSuchServer'\n"
    )
    assert run("-n", "-c", "NoSuchServer", "127.0.0.1:0") == (1, "", expected)


def test_class_from_a_missing_module_exits_1_with_a_message():
    expected = "Cannot find class \"no_such_module.Server\": No module named 'no_such_module'\n"
    assert run("-n", "-c", "no_such_module.Server", "127.0.0.1:0") == (1, "", expected)


def test_address_in_use_exits_1_with_a_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("-n", "-c", "DebuggingServer", "127.0.0.1:%d" % port)
    in_use = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    assert result == (1, "", "Cannot listen on 127.0.0.1:%d: %s\n" % (port, in_use))
