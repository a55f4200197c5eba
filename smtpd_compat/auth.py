"""SMTP AUTH (RFC 4954) with the PLAIN, LOGIN and CRAM-MD5 mechanisms.

``SMTPServer(..., authenticator=check)`` turns it on.  ``check(channel,
mechanism, login, password)`` returns true to accept the credentials;
``mechanism`` is 'PLAIN', 'LOGIN' or 'CRAM-MD5'.  EHLO then offers
``AUTH PLAIN LOGIN`` (plus CRAM-MD5 when ``check.mechanisms`` lists it, see
below), and a successful AUTH makes ``login`` a keyword argument of every
later ``process_message`` call of the session (``None`` before AUTH).

Options, with RFC 4954's reasons:

    auth_require_tls (default True)
        AUTH is neither offered nor accepted before TLS (538), so that
        passwords never cross the network in the clear (RFC 4954 4, 14).
    auth_required (default False)
        MAIL is refused with 530 until the client has authenticated.

Replies (as CPython's smtpd, without enhanced status codes, which it does
not advertise):

    334 <base64 challenge>                          the server's turn
    235 Authentication successful
    535 Authentication credentials invalid          the check said no
    538 Encryption required for requested authentication mechanism
    530 Authentication required                     MAIL before AUTH
    504 Unrecognized authentication type
    501 Syntax: AUTH mechanism [initial-response]
    501 Cannot decode response                      bad base64 or UTF-8
    501 Authentication cancelled                    the client sent "*"
    503 Already authenticated
    503 Error: AUTH not permitted during a mail transaction
    503 Error: send EHLO first

CRAM-MD5 (RFC 2195) never shows the server the password, only a keyed
digest of a challenge, so the check is given a ``CramMD5Response`` as
``password``: ``response.verify(secret)`` says whether the client knew
*secret*.  Because a check that compares ``password`` with a string would
fail it, CRAM-MD5 is offered only when the check has an attribute
``mechanisms`` that names it (``PasswordCheck`` does).

The mechanisms are generators that yield challenges (bytes) and receive
the decoded responses; they return (login, password).  They do no I/O and
are tested on their own.

Public names: Auth, PasswordCheck, CramMD5Response, AuthError, plain,
login, cram_md5, MECHANISMS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time

from . import hooks

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Tuple, Union

    from . import SMTPChannel

    # A mechanism: yields challenges, is sent the decoded responses, and
    # returns (login, password).
    _Exchange = Generator[bytes, Optional[bytes], Tuple[str, Any]]
    # check(channel, mechanism, login, password) -> true to accept; the
    # password is a str, or a CramMD5Response for CRAM-MD5.
    _Authenticator = Callable[[SMTPChannel, str, str, Any], object]
del TYPE_CHECKING

__all__ = [
    'Auth',
    'PasswordCheck',
    'CramMD5Response',
    'AuthError',
    'plain',
    'login',
    'cram_md5',
    'MECHANISMS',
]

SUCCEEDED = '235 Authentication successful'
INVALID = '535 Authentication credentials invalid'
NEEDS_TLS = '538 Encryption required for requested authentication mechanism'
REQUIRED = '530 Authentication required'
UNKNOWN_MECHANISM = '504 Unrecognized authentication type'
SYNTAX = '501 Syntax: AUTH mechanism [initial-response]'
UNDECODABLE = '501 Cannot decode response'
CANCELLED = '501 Authentication cancelled'
ALREADY = '503 Already authenticated'
IN_TRANSACTION = '503 Error: AUTH not permitted during a mail transaction'
NEED_EHLO = '503 Error: send EHLO first'

DEFAULT_MECHANISMS = ('PLAIN', 'LOGIN')


class AuthError(Exception):
    """Ends an AUTH exchange with the reply it carries."""

    def __init__(self, reply: str) -> None:
        Exception.__init__(self, reply)
        self.reply = reply


def _text(data: bytes) -> str:
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise AuthError(UNDECODABLE) from None


def plain(initial_response: Optional[bytes]) -> _Exchange:
    """RFC 4616: one message, "authzid NUL authcid NUL password"."""
    response = initial_response
    if response is None:
        response = yield b''
    parts = response.split(b'\0')  # type: ignore[union-attr]  # sent bytes
    if len(parts) != 3:
        raise AuthError(UNDECODABLE)
    authzid, authcid, password = (_text(part) for part in parts)
    # Acting on behalf of someone else is not supported: only an empty
    # authorisation identity, or one's own, is accepted.
    if authzid and authzid != authcid:
        raise AuthError(INVALID)
    return authcid, password


def login(initial_response: Optional[bytes]) -> _Exchange:
    """The LOGIN mechanism (draft-murchison-sasl-login): user, password."""
    user = initial_response
    if user is None:
        user = yield b'Username:'
    password = yield b'Password:'
    return _text(user), _text(password)  # type: ignore[arg-type]  # sent bytes


class CramMD5Response:
    """A CRAM-MD5 answer: the client's digest of our challenge."""

    def __init__(self, challenge: bytes, digest: str) -> None:
        self.challenge, self.digest = challenge, digest

    def verify(self, secret: Union[str, bytes]) -> bool:
        if isinstance(secret, str):
            secret = secret.encode('utf-8')
        expected = hmac.new(secret, self.challenge, hashlib.md5).hexdigest()
        return hmac.compare_digest(expected, self.digest)


def cram_md5(initial_response: Optional[bytes], hostname: str = 'localhost') -> _Exchange:
    """RFC 2195: we send a unique challenge, the client a keyed digest."""
    if initial_response is not None:
        raise AuthError(SYNTAX)  # the mechanism has no initial response
    challenge = (
        '<%s.%d@%s>' % (binascii.hexlify(os.urandom(8)).decode(), time.time(), hostname)
    ).encode('ascii')
    response = yield challenge
    user, space, digest = _text(response).rpartition(' ')  # type: ignore[arg-type]  # sent bytes
    if not space or not user:
        raise AuthError(UNDECODABLE)
    return user, CramMD5Response(challenge, digest)


MECHANISMS: Dict[str, Callable[..., _Exchange]] = {
    'PLAIN': plain,
    'LOGIN': login,
    'CRAM-MD5': cram_md5,
}


def decode_response(text: str) -> bytes:
    """A client's base64 line as bytes; '=' is an empty response."""
    if text == '=':
        return b''
    try:
        return base64.b64decode(text.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise AuthError(UNDECODABLE) from None


class PasswordCheck:
    """An authenticator over a {login: password} mapping, for every
    mechanism including CRAM-MD5."""

    mechanisms = ('CRAM-MD5', 'PLAIN', 'LOGIN')

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self.passwords = passwords

    def __call__(self, channel: SMTPChannel, mechanism: str, login: str, password: Any) -> bool:
        secret = self.passwords.get(login)
        if secret is None:
            return False
        if isinstance(password, CramMD5Response):
            return password.verify(secret)
        return hmac.compare_digest(password.encode('utf-8'), secret.encode('utf-8'))


class Auth(hooks.Extension):
    def __init__(
        self, authenticator: _Authenticator, required: bool = False, require_tls: bool = True
    ) -> None:
        self._check = authenticator
        self._required = required
        self._require_tls = require_tls
        offered = getattr(authenticator, 'mechanisms', DEFAULT_MECHANISMS)
        self.mechanisms = [name.upper() for name in offered]
        unknown = set(self.mechanisms) - set(MECHANISMS)
        if unknown:
            raise ValueError('unsupported AUTH mechanisms: %s' % ', '.join(sorted(unknown)))

    def _allowed(self, connection: hooks.Connection) -> bool:
        return connection.tls is not None or not self._require_tls

    # -- hooks ---------------------------------------------------------------

    def ehlo_keywords(self, channel: SMTPChannel, connection: hooks.Connection) -> List[str]:
        if not self._allowed(connection):
            return []
        return ['AUTH ' + ' '.join(self.mechanisms)]

    def command_handler(
        self,
        channel: SMTPChannel,
        connection: hooks.Connection,
        verb: str,
        handler: hooks._Handler,
    ) -> hooks._Handler:
        if verb == 'AUTH':
            return lambda arg: self._auth(channel, connection, arg)
        if verb == 'MAIL' and self._required and connection.login is None and handler is not None:
            return lambda arg: channel.push(REQUIRED)
        return handler

    def intercept(
        self, channel: SMTPChannel, connection: hooks.Connection, line: Union[bytes, str]
    ) -> bool:
        if connection.auth_exchange is None:
            return False
        if not isinstance(line, str):
            line = line.decode('ascii', 'replace')
        if line.strip() == '*':
            connection.auth_exchange = None
            channel.push(CANCELLED)
            return True
        try:
            self._continue(channel, connection, decode_response(line.strip()))
        except AuthError as error:
            connection.auth_exchange = None
            channel.push(error.reply)
        return True

    def message_kwargs(self, channel: SMTPChannel, connection: hooks.Connection) -> Dict[str, Any]:
        return {'login': connection.login}

    # -- the exchange ----------------------------------------------------------

    def _auth(
        self, channel: SMTPChannel, connection: hooks.Connection, arg: Optional[str]
    ) -> None:
        if not channel.extended_smtp:
            channel.push(NEED_EHLO)
        elif connection.login is not None:
            channel.push(ALREADY)
        elif channel.mailfrom:
            channel.push(IN_TRANSACTION)
        elif not self._allowed(connection):
            channel.push(NEEDS_TLS)
        elif not arg:
            channel.push(SYNTAX)
        else:
            self._start(channel, connection, arg)

    def _start(self, channel: SMTPChannel, connection: hooks.Connection, arg: str) -> None:
        name, _, initial = arg.partition(' ')
        name, initial = name.upper(), initial.strip()
        if name not in self.mechanisms:
            channel.push(UNKNOWN_MECHANISM)
            return
        try:
            initial_response = decode_response(initial) if initial else None
            if name == 'CRAM-MD5':
                exchange = cram_md5(initial_response, channel.fqdn)
            else:
                exchange = MECHANISMS[name](initial_response)
            connection.auth_exchange = (name, exchange)
            self._continue(channel, connection, None)
        except AuthError as error:
            connection.auth_exchange = None
            channel.push(error.reply)

    def _continue(
        self, channel: SMTPChannel, connection: hooks.Connection, response: Optional[bytes]
    ) -> None:
        name, exchange = connection.auth_exchange
        try:
            challenge = exchange.send(response)
        except StopIteration as finished:
            connection.auth_exchange = None
            user, password = finished.value
            self._decide(channel, connection, name, user, password)
            return
        channel.push('334 ' + base64.b64encode(challenge).decode('ascii'))

    def _decide(
        self,
        channel: SMTPChannel,
        connection: hooks.Connection,
        name: str,
        user: str,
        password: Any,
    ) -> None:
        if self._check(channel, name, user, password):
            connection.login = user
            channel.push(SUCCEEDED)
        else:
            channel.push(INVALID)
