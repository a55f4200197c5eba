"""TLS for SMTP sessions: STARTTLS (RFC 3207) and TLS from the first byte.

StartTLS(context, require_starttls=False, deadlines=None, handshake_seconds=60)
    ``SMTPServer(..., starttls_context=ctx)``.  EHLO offers STARTTLS until
    TLS is active.  ``STARTTLS`` is answered ``220 Ready to start TLS``
    (RFC 3207 4); once that reply is on the wire the handshake runs.  After
    it the session starts afresh, as RFC 3207 4.2 requires: no greeting, no
    transaction, no AUTH identity survive, and anything the client sent
    after STARTTLS in the clear is thrown away unread.  With
    ``require_starttls``, MAIL, RCPT, DATA, VRFY and EXPN before TLS are
    answered ``530 Must issue a STARTTLS command first`` (RFC 3207 4).
ImplicitTLS(context)
    ``SMTPServer(..., ssl_context=ctx)``: the handshake runs as soon as the
    connection is accepted, before the 220 greeting ("SMTPS", RFC 8314 3.3).
Handshake(context)
    The ``hooks.Prelude`` step that runs a server-side handshake.
TLSSocket(sslsock)
    What a channel reads and writes through once TLS is active.

Handshakes run inside the loop, without blocking: a client that stalls
half-way through one holds up nobody else, and is dropped when the
prelude's deadline passes.  ``connection.tls`` is the ``ssl.SSLSocket``
once TLS is active (``channel.connection.tls.version()``, ``.cipher()``).
"""

from __future__ import annotations

import errno
import ssl

from . import hooks

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, TypeVar

    from . import SMTPChannel, SMTPServer
    from .deadlines import Deadlines

    _Argument = TypeVar('_Argument')
    _Result = TypeVar('_Result')
del TYPE_CHECKING

__all__ = ['StartTLS', 'ImplicitTLS', 'Handshake', 'TLSSocket']

READY = '220 Ready to start TLS'
NO_PARAMETERS = '501 Syntax error (no parameters allowed)'
ALREADY_ACTIVE = '503 Error: TLS already active'
STARTTLS_FIRST = '530 Must issue a STARTTLS command first'

# Commands that RFC 3207 4 lets through before STARTTLS when TLS is
# required; HELO, RSET and HELP change nothing that TLS protects either.
_ALLOWED_IN_THE_CLEAR = frozenset(['EHLO', 'HELO', 'NOOP', 'QUIT', 'RSET', 'HELP', 'STARTTLS'])


class TLSSocket:
    """An ssl.SSLSocket that fails the way asyncore expects of a socket.

    A non-blocking SSLSocket raises SSLWantReadError where a plain socket
    would raise BlockingIOError, and SSLError where a plain one would say
    the peer went away; asyncore and asynchat know only the latter.
    Everything else is the SSLSocket's own (``getpeercert``, ``cipher``).
    """

    def __init__(self, sslsock: ssl.SSLSocket) -> None:
        self._sslsock = sslsock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sslsock, name)

    def recv(self, size: int) -> bytes:
        data = self._translate(self._sslsock.recv, size)
        # OpenSSL may hold decrypted bytes that the OS no longer reports
        # as readable: take them now or they would wait for more input.
        while len(data) < size and self._sslsock.pending():
            more = self._translate(self._sslsock.recv, size - len(data))
            if not more:
                break
            data += more
        return data

    def send(self, data: bytes) -> int:
        try:
            return self._translate(self._sslsock.send, data)
        except BlockingIOError:
            return 0

    @staticmethod
    def _translate(operation: Callable[[_Argument], _Result], argument: _Argument) -> _Result:
        try:
            return operation(argument)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError(errno.EAGAIN, 'TLS wants to wait') from None
        except ssl.SSLError as error:
            raise ConnectionResetError(errno.ECONNRESET, str(error)) from error

    def fileno(self) -> int:
        return self._sslsock.fileno()

    def close(self) -> None:
        self._sslsock.close()


class Handshake:
    """Prelude step: wrap the socket and complete a server handshake."""

    def __init__(self, context: Optional[ssl.SSLContext]) -> None:
        self._context = context
        self._sslsock: Optional[ssl.SSLSocket] = None

    def advance(self, prelude: hooks.Prelude) -> Optional[str]:
        if self._sslsock is None:
            # No context only in _Resume, whose socket is wrapped already;
            # the prelude's socket is set in its __init__.
            self._sslsock = self._context.wrap_socket(  # type: ignore[union-attr]
                prelude.socket,  # type: ignore[arg-type]
                server_side=True,
                do_handshake_on_connect=False,
            )
            prelude.socket = self._sslsock  # same descriptor, now TLS
        try:
            self._sslsock.do_handshake()
        except ssl.SSLWantReadError:
            return hooks.READ
        except ssl.SSLWantWriteError:
            return hooks.WRITE
        prelude.connection.tls = self._sslsock
        # Not a socket.socket, but all of one that asyncore uses.
        prelude.socket = TLSSocket(self._sslsock)  # type: ignore[assignment]
        return None


class ImplicitTLS(hooks.Extension):
    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context

    def prelude_steps(self, server: SMTPServer, connection: hooks.Connection) -> List[hooks._Step]:
        return [Handshake(self._context)]


class _AfterSent:
    """An asynchat producer that runs *action* when it reaches the head of
    the output queue, i.e. once everything queued before it is sent."""

    def __init__(self, action: Callable[[], object]) -> None:
        self._action: Optional[Callable[[], object]] = action

    def more(self) -> bytes:
        action, self._action = self._action, None
        if action is not None:
            action()
        return b''


class StartTLS(hooks.Extension):
    def __init__(
        self,
        context: ssl.SSLContext,
        require_starttls: bool = False,
        deadlines: Optional[Deadlines] = None,
        handshake_seconds: float = hooks.PRELUDE_SECONDS,
    ) -> None:
        self._context = context
        self._required = require_starttls
        self._deadlines = deadlines
        self._handshake_seconds = handshake_seconds

    def ehlo_keywords(self, channel: SMTPChannel, connection: hooks.Connection) -> List[str]:
        return [] if connection.tls else ['STARTTLS']

    def command_handler(
        self,
        channel: SMTPChannel,
        connection: hooks.Connection,
        verb: str,
        handler: hooks._Handler,
    ) -> hooks._Handler:
        if verb == 'STARTTLS':
            return lambda arg: self._starttls(channel, connection, arg)
        if (
            self._required
            and handler is not None
            and connection.tls is None
            and verb not in _ALLOWED_IN_THE_CLEAR
        ):
            return lambda arg: channel.push(STARTTLS_FIRST)
        return handler

    def _starttls(
        self, channel: SMTPChannel, connection: hooks.Connection, arg: Optional[str]
    ) -> None:
        if arg:
            channel.push(NO_PARAMETERS)
        elif connection.tls is not None:
            channel.push(ALREADY_ACTIVE)
        else:
            channel.push(READY)
            # Not a simple_producer, but it has more(), all that async_chat uses.
            channel.push_with_producer(
                _AfterSent(lambda: self._handshake(channel, connection))  # type: ignore[arg-type]
            )

    def _handshake(self, channel: SMTPChannel, connection: hooks.Connection) -> None:
        # Bytes pipelined after STARTTLS came in the clear: obeying them
        # once TLS is up would let an attacker inject commands (the
        # CVE-2011-0411 family), so they are dropped.
        channel.ac_in_buffer = b''
        sslsock = self._context.wrap_socket(
            channel.socket,  # type: ignore[arg-type]  # an open channel's: set
            server_side=True,
            do_handshake_on_connect=False,
        )
        # Until the handshake ends the channel keeps its descriptor but
        # the prelude takes its place in the map; closing either closes
        # the TLS socket.
        channel.socket = channel.conn = sslsock

        def done(tls_socket: Any) -> None:
            channel.socket = channel.conn = tls_socket
            channel.set_socket(tls_socket)
            self._restart_session(channel, connection)

        hooks.Prelude(
            sslsock,
            channel._map,
            [_Resume(sslsock)],
            connection,
            done,
            channel.close,
            self._deadlines,
            self._handshake_seconds,
        )

    @staticmethod
    def _restart_session(channel: SMTPChannel, connection: hooks.Connection) -> None:
        # RFC 3207 4.2: forget everything learnt before TLS; the client
        # must EHLO again and may then see extensions offered only now.
        channel._set_rset_state()
        channel.seen_greeting = ''
        channel.extended_smtp = False
        connection.forget_session()


class _Resume(Handshake):
    """Handshake on a socket already wrapped (by StartTLS._handshake)."""

    def __init__(self, sslsock: ssl.SSLSocket) -> None:
        Handshake.__init__(self, None)
        self._sslsock = sslsock
