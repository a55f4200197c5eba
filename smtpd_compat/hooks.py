"""The hooks through which smtpd_compat's opt-in extensions reach the core.

CPython's smtpd has none of these features, so with every option left at
its default ``SMTPServer`` and ``SMTPChannel`` must behave exactly as
CPython 3.11's do.  The core therefore knows nothing of TLS, AUTH, PROXY
or timeouts: it calls a handful of hook methods on ``server._hooks`` (which
each channel copies to ``channel._hooks``) at fixed points, and a server
built without extension options gets ``NO_HOOKS``, whose methods change
nothing.

The hook points, in the order a session meets them:

    accepted(server, conn, addr)        SMTPServer.handle_accepted
        Decides what happens to a new connection.  ``NO_HOOKS`` opens the
        channel at once (``server._start_session``); extensions may refuse
        the connection, or first run a ``Prelude`` (PROXY header, TLS
        handshake) and open the channel when it is done.
    opened(channel)                     SMTPChannel.__init__, before the 220
    reading(channel)                    SMTPChannel.handle_read, per recv()
    intercept(channel, line) -> bool    SMTPChannel._run_command, first:
        True when an extension consumed the line (an AUTH response)
    command_handler(channel, verb, handler) -> handler or None
                                        SMTPChannel._run_command, after the
        line checks: may replace the smtp_* method found (or None) by its
        own, e.g. for STARTTLS, AUTH, or a 530 refusal
    ehlo_keywords(channel) -> list      SMTPChannel.smtp_EHLO, before HELP
    message_kwargs(channel) -> dict     SMTPChannel._take_message: extra
        keyword arguments for process_message (e.g. ``login``)
    closed(channel)                     SMTPChannel.close
    server_closed(server)               SMTPServer.close: helpers (the
        deadline thread) leave the map once no session needs them

An extension subclasses ``Extension`` and overrides the ``Extension``
methods it needs (they take the per-connection ``Connection`` as well);
``Hooks`` runs the enabled ones in order.  ``build()`` turns SMTPServer's
keyword-only options into a ``Hooks`` (or ``NO_HOOKS``).

Public names: Extension, Connection, Hooks, NO_HOOKS, Prelude, READ,
WRITE, build.
"""

from __future__ import annotations

import socket

from . import asyncore

# typing is imported only by type checkers: it would cost every start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Union

    from . import SMTPChannel, SMTPServer
    from .auth import _Authenticator
    from .deadlines import Deadlines

    class _Step(Protocol):
        """A Prelude step (see Prelude)."""

        def advance(self, prelude: Prelude) -> Optional[str]: ...

    _Handler = Optional[Callable[[Any], object]]  # an smtp_* method, or None
    _MapType = Dict[int, Any]  # a socket map: descriptor -> dispatcher
del TYPE_CHECKING

__all__ = ['Extension', 'Connection', 'Hooks', 'NO_HOOKS', 'Prelude', 'READ', 'WRITE', 'build']

# What a Prelude step waits for before it can go on.
READ = 'read'
WRITE = 'write'

# A PROXY header or a TLS handshake must be done within ``timeout`` seconds,
# or this many when no ``timeout`` was asked for: otherwise a client that
# connects and says nothing would hold its socket for ever.
PRELUDE_SECONDS = 60.0


class _NoHooks:
    """The hooks of a server without extensions: CPython's behaviour."""

    def accepted(self, server: SMTPServer, conn: socket.socket, addr: Any) -> None:
        server._start_session(conn, addr)

    def opened(self, channel: SMTPChannel) -> None:
        pass

    def reading(self, channel: SMTPChannel) -> None:
        pass

    def intercept(self, channel: SMTPChannel, line: bytes) -> bool:
        return False

    def command_handler(self, channel: SMTPChannel, verb: str, handler: _Handler) -> _Handler:
        return handler

    def ehlo_keywords(self, channel: SMTPChannel) -> Sequence[str]:
        return ()

    def message_kwargs(self, channel: SMTPChannel) -> Dict[str, Any]:
        return {}

    def closed(self, channel: SMTPChannel) -> None:
        pass

    def server_closed(self, server: SMTPServer) -> None:
        pass


NO_HOOKS = _NoHooks()


class Connection:
    """What the extensions know about one client connection.

    Made when the connection is accepted, handed to the channel when it
    opens (``channel.connection``) and closed with it.

    peer        the client's address when a PROXY header named it, else None
    tls         the ssl.SSLSocket once TLS is active, else None
    login       the identity AUTH established, else None
    """

    def __init__(self) -> None:
        self.peer: Any = None
        self.tls: Optional[ssl.SSLSocket] = None
        self.login: Optional[str] = None
        self.auth_exchange: Any = None  # an AUTH dialogue awaiting a response
        self._on_close: List[Callable[[], object]] = []

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run *callback* once, when the connection ends."""
        self._on_close.append(callback)

    def forget_session(self) -> None:
        """Drop what the client told us before TLS began (RFC 3207 4.2)."""
        self.login = None
        self.auth_exchange = None

    def close(self) -> None:
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()


class Extension:
    """Base class of an extension: every hook does nothing.

    ``admit`` returns False after refusing (and closing) a connection;
    ``prelude_steps`` lists steps to run before the channel opens.
    """

    def admit(self, server: SMTPServer, conn: socket.socket, connection: Connection) -> bool:
        return True

    def prelude_steps(self, server: SMTPServer, connection: Connection) -> List[_Step]:
        return []

    def opened(self, channel: SMTPChannel, connection: Connection) -> None:
        pass

    def reading(self, channel: SMTPChannel, connection: Connection) -> None:
        pass

    def intercept(self, channel: SMTPChannel, connection: Connection, line: bytes) -> bool:
        return False

    def command_handler(
        self, channel: SMTPChannel, connection: Connection, verb: str, handler: _Handler
    ) -> _Handler:
        return handler

    def ehlo_keywords(self, channel: SMTPChannel, connection: Connection) -> List[str]:
        return []

    def message_kwargs(self, channel: SMTPChannel, connection: Connection) -> Dict[str, Any]:
        return {}


class Hooks:
    """Runs the enabled extensions, in order, at each hook point."""

    def __init__(
        self,
        extensions: Iterable[Extension],
        deadlines: Optional[Deadlines] = None,
        prelude_seconds: float = PRELUDE_SECONDS,
    ) -> None:
        self.extensions = list(extensions)
        self.deadlines = deadlines
        self.prelude_seconds = prelude_seconds
        # Connections accepted and about to become channels: the channel
        # constructor's signature is CPython's, so this is how opened()
        # finds the Connection made for it.
        self._opening: Dict[socket.socket, Connection] = {}

    def accepted(self, server: SMTPServer, conn: socket.socket, addr: Any) -> None:
        connection = Connection()
        for extension in self.extensions:
            if not extension.admit(server, conn, connection):
                connection.close()
                return
        steps = [
            step
            for extension in self.extensions
            for step in extension.prelude_steps(server, connection)
        ]
        if not steps:
            self._open(server, conn, addr, connection)
            return

        def done(sock: socket.socket) -> None:
            self._open(server, sock, addr, connection)

        def abort() -> None:
            connection.close()

        Prelude(
            conn, server._map, steps, connection, done, abort, self.deadlines, self.prelude_seconds
        )

    def _open(
        self, server: SMTPServer, sock: socket.socket, addr: Any, connection: Connection
    ) -> None:
        self._opening[sock] = connection
        try:
            server._start_session(sock, addr)
        finally:
            # Still here: the channel never reached opened() (it failed or
            # closed at once), so nobody else will close the Connection.
            if self._opening.pop(sock, None) is not None:
                connection.close()

    # ``channel.connection`` is set here, and read by the hooks below (a
    # channel of a server without extensions has none).

    def opened(self, channel: SMTPChannel) -> None:
        connection = self._opening.pop(channel.conn, None)
        if connection is None:
            connection = Connection()  # a channel built by hand
        channel.connection = connection
        for extension in self.extensions:
            extension.opened(channel, connection)

    def reading(self, channel: SMTPChannel) -> None:
        for extension in self.extensions:
            extension.reading(channel, channel.connection)

    def intercept(self, channel: SMTPChannel, line: bytes) -> bool:
        for extension in self.extensions:
            if extension.intercept(channel, channel.connection, line):
                return True
        return False

    def command_handler(self, channel: SMTPChannel, verb: str, handler: _Handler) -> _Handler:
        for extension in self.extensions:
            handler = extension.command_handler(channel, channel.connection, verb, handler)
        return handler

    def ehlo_keywords(self, channel: SMTPChannel) -> List[str]:
        return [
            keyword
            for extension in self.extensions
            for keyword in extension.ehlo_keywords(channel, channel.connection)
        ]

    def message_kwargs(self, channel: SMTPChannel) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {}
        for extension in self.extensions:
            kwargs.update(extension.message_kwargs(channel, channel.connection))
        return kwargs

    def closed(self, channel: SMTPChannel) -> None:
        # A channel that closed inside its constructor never got one.
        connection = getattr(channel, 'connection', None)
        if connection is not None:
            connection.close()

    def server_closed(self, server: SMTPServer) -> None:
        # Sessions still open keep their deadlines; after the last one the
        # helper goes, so that asyncore.loop() can end on an empty map.
        if self.deadlines is not None:
            self.deadlines.close_when_idle()


class Prelude(asyncore.dispatcher):
    """Holds a connection's socket while work that precedes SMTP runs.

    *steps* are objects with ``advance(prelude)``, which does what it can
    without blocking and returns READ or WRITE to wait for the socket, or
    None when finished.  A step may replace ``prelude.socket`` (TLS wraps
    it; the descriptor stays the same).  When every step is done the
    prelude leaves the map and calls ``done(socket)``; if any step fails,
    the peer goes away or the deadline passes, it closes the socket and
    calls ``abort()``.
    """

    def __init__(
        self,
        sock: socket.socket,
        map: _MapType,
        steps: Iterable[_Step],
        connection: Connection,
        done: Callable[[socket.socket], None],
        abort: Callable[[], None],
        deadlines: Optional[Deadlines] = None,
        seconds: float = PRELUDE_SECONDS,
    ) -> None:
        asyncore.dispatcher.__init__(self, map=map)
        sock.setblocking(False)
        self.connection = connection
        self._steps = list(steps)
        self._done, self._abort = done, abort
        self._waiting_for = READ
        self._deadlines = deadlines
        self._finished = False
        self.set_socket(sock)
        self.connected = True
        if deadlines is not None:
            deadlines.set(self, seconds, self.close)

    def readable(self) -> bool:
        return self._waiting_for == READ

    def writable(self) -> bool:
        return self._waiting_for == WRITE

    def handle_read(self) -> None:
        self._advance()

    def handle_write(self) -> None:
        self._advance()

    def handle_expt(self) -> None:
        self.close()  # out-of-band data has no place in a handshake

    def handle_close(self) -> None:
        self.close()

    def _advance(self) -> None:
        while self._steps:
            try:
                waiting_for = self._steps[0].advance(self)
            except (OSError, ValueError):
                # The peer went away or spoke nonsense (ssl.SSLError and
                # proxy_protocol.HeaderError are among these): drop it.
                self.close()
                return
            if waiting_for is not None:
                self._waiting_for = waiting_for
                return
            self._steps.pop(0)
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._forget()
        self._done(self.socket)  # type: ignore[arg-type]  # set in __init__

    def _forget(self) -> None:
        if self._deadlines is not None:
            self._deadlines.cancel(self)
        self.del_channel()

    def close(self) -> None:
        """Give up: close the socket and tell whoever was waiting."""
        if self._finished:
            return
        self._finished = True
        self._forget()
        try:
            self.socket.close()  # type: ignore[union-attr]  # set in __init__
        except OSError:
            pass
        self._abort()


def build(
    server: SMTPServer,
    timeout: Optional[float] = None,
    max_connections: Optional[int] = None,
    starttls_context: Optional[ssl.SSLContext] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    require_starttls: bool = False,
    authenticator: Optional[_Authenticator] = None,
    auth_required: bool = False,
    auth_require_tls: bool = True,
    proxy_protocol: bool = False,
) -> Union[Hooks, _NoHooks]:
    """The hooks for SMTPServer's keyword-only options; NO_HOOKS if none."""
    # Imported here: a server without options never loads these modules.
    from . import auth, limits, tls
    from . import proxy_protocol as proxy
    from .deadlines import Deadlines

    _check_options(
        timeout,
        max_connections,
        starttls_context,
        ssl_context,
        require_starttls,
        authenticator,
        auth_required,
        auth_require_tls,
    )
    needs_deadlines = (
        timeout is not None
        or starttls_context is not None
        or ssl_context is not None
        or proxy_protocol
    )
    if not needs_deadlines and max_connections is None and authenticator is None:
        return NO_HOOKS
    deadlines = Deadlines(server._map) if needs_deadlines else None
    prelude_seconds = PRELUDE_SECONDS if timeout is None else timeout
    extensions: List[Extension] = []
    if max_connections is not None:
        # Implicit-TLS clients would read a plain-text 421 as a broken
        # handshake: they are only closed.
        extensions.append(limits.ConnectionLimit(max_connections, reply=ssl_context is None))
    if timeout is not None:
        # A timeout needs deadlines: made above.
        extensions.append(limits.IdleTimeout(timeout, deadlines))  # type: ignore[arg-type]
    if proxy_protocol:
        extensions.append(proxy.ProxyProtocol())
    if ssl_context is not None:
        extensions.append(tls.ImplicitTLS(ssl_context))
    if starttls_context is not None:
        extensions.append(
            tls.StartTLS(starttls_context, require_starttls, deadlines, prelude_seconds)
        )
    if authenticator is not None:
        extensions.append(auth.Auth(authenticator, auth_required, auth_require_tls))
    return Hooks(extensions, deadlines, prelude_seconds)


def _check_options(
    timeout: Optional[float],
    max_connections: Optional[int],
    starttls_context: Optional[ssl.SSLContext],
    ssl_context: Optional[ssl.SSLContext],
    require_starttls: bool,
    authenticator: Optional[_Authenticator],
    auth_required: bool,
    auth_require_tls: bool,
) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError('timeout must be a positive number of seconds')
    if max_connections is not None and (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise ValueError('max_connections must be a positive integer')
    if starttls_context is not None and ssl_context is not None:
        raise ValueError(
            'starttls_context and ssl_context exclude each '
            'other: a connection is either plain at first '
            '(STARTTLS) or encrypted from the start'
        )
    if require_starttls and starttls_context is None:
        raise ValueError('require_starttls needs a starttls_context')
    if auth_required and authenticator is None:
        raise ValueError('auth_required needs an authenticator')
    if (
        authenticator is not None
        and auth_require_tls
        and starttls_context is None
        and ssl_context is None
    ):
        raise ValueError(
            'auth_require_tls (the default) needs '
            'starttls_context or ssl_context; pass '
            'auth_require_tls=False to allow AUTH in the clear'
        )


def refuse(conn: socket.socket, reply: Optional[bytes]) -> None:
    """Send *reply* (bytes, or None for none) on a fresh socket; close it.

    A short reply fits in a new socket's empty send buffer, so the
    non-blocking send either takes it all or the peer is already gone.
    """
    try:
        conn.setblocking(False)
        if reply:
            conn.send(reply)
    except OSError:
        pass
    finally:
        conn.close()


def local_fqdn() -> str:
    """The name a 421 carries; socket.getfqdn() as the greeting uses."""
    return socket.getfqdn()
