"""With no extension option, SMTPServer behaves as CPython's: no hooks run,
EHLO offers nothing new, STARTTLS and AUTH are unknown commands."""

import pytest

import smtpd_compat
from extension_support import FQDN, Client, greeting
from smtpd_compat import hooks


def test_a_server_without_options_gets_the_hooks_that_do_nothing(serve):
    assert serve().server._hooks is hooks.NO_HOOKS


def test_without_options_ehlo_offers_exactly_what_cpython_offers(serve):
    with Client(serve().port) as client:
        assert client.reply() == greeting()
        assert client.command(b"EHLO me") == (
            b"250-" + FQDN.encode() + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n"
        )


@pytest.mark.parametrize("verb", [b"STARTTLS", b"AUTH PLAIN AGFAAGI="])
def test_without_options_starttls_and_auth_are_unknown_commands(serve, verb):
    with Client(serve().port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert (
            client.command(verb) == b'500 Error: command "%s" not recognized\r\n' % verb.split()[0]
        )


def test_extension_options_are_keyword_only():
    with pytest.raises(TypeError):
        smtpd_compat.SMTPServer(("127.0.0.1", 0), None, 1000, {}, False, False, 5)


@pytest.mark.parametrize(
    "options, complaint",
    [
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"max_connections": 0}, "max_connections must be a positive integer"),
        ({"require_starttls": True}, "require_starttls needs a starttls_context"),
        ({"auth_required": True}, "auth_required needs an authenticator"),
        ({"authenticator": lambda *a: True}, "auth_require_tls (the default) needs"),
    ],
)
def test_options_that_cannot_work_are_refused_with_valueerror(options, complaint):
    socket_map = {}
    with pytest.raises(ValueError) as raised:
        smtpd_compat.SMTPServer(("127.0.0.1", 0), None, map=socket_map, **options)
    assert str(raised.value).startswith(complaint)
    assert socket_map == {}  # nothing left listening
