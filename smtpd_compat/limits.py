"""Limits on sessions: how many at once, and how long one may stay silent.

ConnectionLimit(max_connections, reply=True)
    ``SMTPServer(..., max_connections=N)``: while N connections are open,
    a new one is answered ``421 <fqdn> Error: too many connections`` and
    closed before any channel is made for it (RFC 5321 3.8 and 4.2.2: 421
    is how a server declines service, and it may be the greeting).
    Connections still in a PROXY header or TLS handshake count as open.

IdleTimeout(seconds, deadlines)
    ``SMTPServer(..., timeout=SECONDS)``: a session that sends nothing for
    SECONDS, whether between commands or in the middle of a line or of
    DATA, is sent ``421 <fqdn> Error: timeout exceeded`` and closed.  RFC
    5321 4.5.3.2 lets a server give up on a silent client; 4.2.2 says the
    421 reply is how it says it is closing the channel.

Both are ``hooks.Extension`` objects; ``hooks.build`` makes them.
"""

from __future__ import annotations

from . import hooks

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Optional, Set

    from . import SMTPChannel, SMTPServer
    from .deadlines import Deadlines
del TYPE_CHECKING

__all__ = ['ConnectionLimit', 'IdleTimeout']


class ConnectionLimit(hooks.Extension):
    def __init__(self, max_connections: int, reply: bool = True) -> None:
        self.max_connections = max_connections
        self._open: Set[hooks.Connection] = set()  # from accept to close
        self._reply: Optional[bytes] = None
        if reply:
            self._reply = ('421 %s Error: too many connections\r\n' % hooks.local_fqdn()).encode(
                'ascii'
            )

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, server: SMTPServer, conn: socket.socket, connection: hooks.Connection) -> bool:
        if len(self._open) >= self.max_connections:
            hooks.refuse(conn, self._reply)
            return False
        self._open.add(connection)
        connection.on_close(lambda: self._open.discard(connection))
        return True


class IdleTimeout(hooks.Extension):
    def __init__(self, seconds: float, deadlines: Deadlines) -> None:
        self.seconds = seconds
        self._deadlines = deadlines

    def opened(self, channel: SMTPChannel, connection: hooks.Connection) -> None:
        deadlines = self._deadlines
        deadlines.set(channel, self.seconds, lambda: self._expire(channel))
        connection.on_close(lambda: deadlines.cancel(channel))

    def reading(self, channel: SMTPChannel, connection: hooks.Connection) -> None:
        self._deadlines.touch(channel)

    def _expire(self, channel: SMTPChannel) -> None:
        fileno = channel._fileno  # None once the channel has left the map
        owner = None if fileno is None else channel._map.get(fileno)
        if owner is not None and owner is not channel:
            # A STARTTLS handshake holds the socket: no plain-text reply.
            owner.close()
            return
        if owner is channel:
            channel.push('421 %s Error: timeout exceeded' % channel.fqdn)
        channel.close()
