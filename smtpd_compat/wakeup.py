"""Waking an asyncore loop from another thread.

A loop blocks in the OS until one of its sockets is ready, for as long as
its caller's ``timeout``.  ``Waker`` is a dispatcher over one end of a
socket pair: writing a byte to the other end (``wake()``, safe from any
thread) makes it readable, and the loop calls ``on_wake()`` at once.

Public names: Waker.
"""

from __future__ import annotations

import socket

from . import asyncore

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional

    _MapType = Dict[int, Any]  # a socket map: descriptor -> dispatcher
del TYPE_CHECKING

__all__ = ['Waker']


class Waker(asyncore.dispatcher):
    """A socket pair in *map*; ``wake()`` runs ``on_wake()`` in the loop.

    ``on_close()``, if given, runs when the waker is closed (as
    ``asyncore.close_all`` closes everything in the map).
    """

    def __init__(
        self,
        map: _MapType,
        on_wake: Callable[[], object],
        on_close: Optional[Callable[[], object]] = None,
    ) -> None:
        asyncore.dispatcher.__init__(self, map=map)
        inside, self._outside = socket.socketpair()
        inside.setblocking(False)
        self._outside.setblocking(False)
        self._on_wake = on_wake
        self._on_close: Optional[Callable[[], object]] = on_close
        self.set_socket(inside)

    def wake(self) -> None:
        try:
            self._outside.send(b'!')
        except BlockingIOError:
            pass  # bytes are already waiting: the loop will wake anyway
        except OSError:
            pass  # closed: nobody left to wake

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            while self.socket.recv(4096):  # type: ignore[union-attr]  # set in __init__
                pass
        except BlockingIOError:
            pass
        self._on_wake()

    def handle_close(self) -> None:
        self.close()

    def close(self) -> None:
        asyncore.dispatcher.close(self)
        self._outside.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
