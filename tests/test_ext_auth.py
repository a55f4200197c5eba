"""AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5 with an ``authenticator`` hook.

Most tests run in the clear (``auth_require_tls=False``) to show the exact
bytes; the default, AUTH only under TLS, has tests of its own."""

import base64
import hashlib
import hmac
import smtplib

import pytest

from extension_support import FQDN, WAIT_SECONDS, Client, send_message
from smtpd_compat import auth

PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def b64(data):
    return base64.b64encode(data)


class Recorder:
    """An authenticator that keeps its calls and accepts PASSWORDS."""

    def __init__(self):
        self.calls = []

    def __call__(self, channel, mechanism, login, password):
        self.calls.append((type(channel).__name__, mechanism, login, password))
        return PASSWORDS.get(login) == password


@pytest.fixture
def authenticator():
    return Recorder()


@pytest.fixture
def clear_server(serve, authenticator):
    return serve(authenticator=authenticator, auth_require_tls=False)


@pytest.fixture
def client(clear_server):
    with Client(clear_server.port) as client:
        client.reply()
        client.command(b"EHLO me")
        yield client


def test_ehlo_offers_auth_plain_and_login(clear_server):
    with Client(clear_server.port) as client:
        client.reply()
        assert client.command(b"EHLO me") == (
            b"250-" + FQDN.encode() + b"\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
            b"250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"
        )


def test_auth_plain_with_an_initial_response_succeeds_with_235(client):
    assert (
        client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
        == b"235 Authentication successful\r\n"
    )


def test_auth_plain_without_an_initial_response_gets_an_empty_challenge(client):
    assert client.command(b"AUTH PLAIN") == b"334 \r\n"
    assert client.command(b64(b"\0alice\0wonderland")) == b"235 Authentication successful\r\n"


def test_auth_login_asks_for_the_username_then_the_password(client):
    assert client.command(b"AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"  # "Username:"
    assert client.command(b64(b"alice")) == b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
    assert client.command(b64(b"wonderland")) == b"235 Authentication successful\r\n"


def test_auth_login_with_the_username_as_initial_response_asks_for_the_password(client):
    assert client.command(b"AUTH LOGIN " + b64(b"alice")) == b"334 UGFzc3dvcmQ6\r\n"
    assert client.command(b64(b"wonderland")) == b"235 Authentication successful\r\n"


def test_a_wrong_password_gets_535(client):
    assert (
        client.command(b"AUTH PLAIN " + b64(b"\0alice\0rabbit"))
        == b"535 Authentication credentials invalid\r\n"
    )


def test_the_authenticator_is_given_channel_mechanism_login_and_password(client, authenticator):
    client.command(b"AUTH LOGIN " + b64(b"bob"))
    client.command(b64(b"builder"))
    assert authenticator.calls == [("SMTPChannel", "LOGIN", "bob", "builder")]


def test_the_authenticated_login_reaches_process_message(client, clear_server):
    client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
    for line in (b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>", b"DATA"):
        client.command(line)
    assert client.command(b"hi\r\n.") == b"250 OK\r\n"
    assert clear_server.server.messages[0].kwargs == {
        "mail_options": [],
        "rcpt_options": [],
        "login": "alice",
    }


def test_login_is_none_in_a_session_that_did_not_authenticate(clear_server):
    assert send_message(clear_server.port, "a@example.org", ["b@example.org"], "hi") == {}
    assert clear_server.server.messages[0].kwargs["login"] is None


def test_a_second_auth_gets_503(client):
    client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
    assert (
        client.command(b"AUTH PLAIN " + b64(b"\0bob\0builder")) == b"503 Already authenticated\r\n"
    )


def test_auth_in_a_mail_transaction_gets_503(client):
    client.command(b"MAIL FROM:<a@example.org>")
    assert client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland")) == (
        b"503 Error: AUTH not permitted during a mail transaction\r\n"
    )


def test_auth_before_ehlo_gets_503(clear_server):
    with Client(clear_server.port) as client:
        client.reply()
        assert client.command(b"AUTH PLAIN") == b"503 Error: send EHLO first\r\n"


def test_an_unknown_mechanism_gets_504(client):
    assert client.command(b"AUTH GSSAPI") == b"504 Unrecognized authentication type\r\n"


def test_auth_without_a_mechanism_gets_501(client):
    assert client.command(b"AUTH") == b"501 Syntax: AUTH mechanism [initial-response]\r\n"


def test_a_response_that_is_not_base64_gets_501(client):
    assert client.command(b"AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
    assert client.command(b"not base64!") == b"501 Cannot decode response\r\n"
    assert client.command(b"NOOP") == b"250 OK\r\n"  # back to commands


def test_a_star_cancels_the_exchange_with_501(client):
    client.command(b"AUTH PLAIN")
    assert client.command(b"*") == b"501 Authentication cancelled\r\n"
    assert client.command(b"NOOP") == b"250 OK\r\n"


def test_auth_required_refuses_mail_before_auth_with_530(serve, authenticator):
    port = serve(authenticator=authenticator, auth_require_tls=False, auth_required=True).port
    with Client(port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert client.command(b"MAIL FROM:<a@example.org>") == b"530 Authentication required\r\n"
        client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
        assert client.command(b"MAIL FROM:<a@example.org>") == b"250 OK\r\n"


def test_by_default_auth_is_neither_offered_nor_accepted_before_tls(
    serve, server_context, authenticator
):
    port = serve(starttls_context=server_context, authenticator=authenticator).port
    with Client(port) as client:
        client.reply()
        assert b"AUTH" not in client.command(b"EHLO me")
        assert client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland")) == (
            b"538 Encryption required for requested authentication mechanism\r\n"
        )
    assert authenticator.calls == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_logs_in_over_starttls(serve, server_context, client_context, mechanism):
    controller = serve(
        starttls_context=server_context,
        authenticator=auth.PasswordCheck(PASSWORDS),
        auth_required=True,
    )
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=WAIT_SECONDS) as smtp:
        smtp.starttls(context=client_context)
        smtp.ehlo()
        smtp.user, smtp.password = "bob", "builder"
        method = {
            "PLAIN": smtp.auth_plain,
            "LOGIN": smtp.auth_login,
            "CRAM-MD5": smtp.auth_cram_md5,
        }
        assert smtp.auth(mechanism, method[mechanism]) == (235, b"Authentication successful")
        assert smtp.sendmail("bob@example.org", ["b@example.org"], "hi") == {}
    assert controller.server.messages[0].kwargs["login"] == "bob"


def test_cram_md5_is_offered_only_to_authenticators_that_list_it(
    serve, server_context, client_context
):
    port = serve(starttls_context=server_context, authenticator=auth.PasswordCheck(PASSWORDS)).port
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_SECONDS) as smtp:
        smtp.starttls(context=client_context)
        smtp.ehlo()
        assert smtp.esmtp_features["auth"] == " CRAM-MD5 PLAIN LOGIN"


def test_a_login_made_before_starttls_is_forgotten(
    serve, server_context, client_context, authenticator
):
    port = serve(
        starttls_context=server_context,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    ).port
    client = Client(port)
    client.reply()
    client.command(b"EHLO me")
    assert (
        client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
        == b"235 Authentication successful\r\n"
    )
    client.command(b"STARTTLS")
    client.starttls(client_context)
    with client:
        client.command(b"EHLO me")
        assert client.command(b"MAIL FROM:<a@example.org>") == b"530 Authentication required\r\n"


def test_ten_thousand_wrong_passwords_leave_the_server_serving(clear_server):
    # Hostile: a password guesser, pipelining its guesses.
    with Client(clear_server.port) as guesser:
        guesser.reply()
        guesser.command(b"EHLO me")
        guesses = b"".join(
            b"AUTH PLAIN " + b64(b"\0alice\0guess%d" % n) + b"\r\n" for n in range(10000)
        )
        guesser.send(guesses)
        for _ in range(10000):
            assert guesser.reply() == b"535 Authentication credentials invalid\r\n"
    with Client(clear_server.port) as client:
        client.reply()
        client.command(b"EHLO me")
        assert (
            client.command(b"AUTH PLAIN " + b64(b"\0alice\0wonderland"))
            == b"235 Authentication successful\r\n"
        )


# The mechanisms on their own: generators that yield challenges.


def run_exchange(exchange, responses):
    challenges = [exchange.send(None)]
    try:
        for response in responses:
            challenges.append(exchange.send(response))
    except StopIteration as finished:
        return challenges, finished.value
    raise AssertionError("the exchange did not finish")


def test_plain_splits_authzid_authcid_and_password():
    assert run_exchange(auth.plain(None), [b"\0alice\0pw"]) == ([b""], ("alice", "pw"))


def test_plain_refuses_to_act_for_someone_else():
    exchange = auth.plain(b"bob\0alice\0pw")
    with pytest.raises(auth.AuthError) as raised:
        exchange.send(None)
    assert raised.value.reply == "535 Authentication credentials invalid"


def test_login_asks_username_then_password():
    assert run_exchange(auth.login(None), [b"alice", b"pw"]) == (
        [b"Username:", b"Password:"],
        ("alice", "pw"),
    )


def test_cram_md5_response_verifies_the_secret_it_was_keyed_with():
    exchange = auth.cram_md5(None, "mx.example.org")
    challenge = exchange.send(None)
    digest = hmac.new(b"pw", challenge, hashlib.md5).hexdigest()
    try:
        exchange.send(b"alice " + digest.encode())
    except StopIteration as finished:
        user, response = finished.value
    assert challenge.startswith(b"<") and challenge.endswith(b"@mx.example.org>")
    assert user == "alice"
    assert response.verify("pw") and not response.verify("other")
