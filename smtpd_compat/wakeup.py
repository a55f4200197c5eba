"""Waking an asyncore loop from another thread.

A loop blocks in the OS until one of its sockets is ready, for as long as
its caller's ``timeout``.  ``Waker`` is a dispatcher over one end of a
socket pair: writing a byte to the other end (``wake()``, safe from any
thread) makes it readable, and the loop calls ``on_wake()`` at once.

Public names: Waker.
"""

import socket

from . import asyncore

__all__ = ['Waker']


class Waker(asyncore.dispatcher):
    """A socket pair in *map*; ``wake()`` runs ``on_wake()`` in the loop.

    ``on_close()``, if given, runs when the waker is closed (as
    ``asyncore.close_all`` closes everything in the map).
    """

    def __init__(self, map, on_wake, on_close=None):
        asyncore.dispatcher.__init__(self, map=map)
        inside, self._outside = socket.socketpair()
        inside.setblocking(False)
        self._outside.setblocking(False)
        self._on_wake, self._on_close = on_wake, on_close
        self.set_socket(inside)

    def wake(self):
        try:
            self._outside.send(b'!')
        except BlockingIOError:
            pass  # bytes are already waiting: the loop will wake anyway
        except OSError:
            pass  # closed: nobody left to wake

    def readable(self):
        return True

    def writable(self):
        return False

    def handle_read(self):
        try:
            while self.socket.recv(4096):
                pass
        except BlockingIOError:
            pass
        self._on_wake()

    def handle_close(self):
        self.close()

    def close(self):
        asyncore.dispatcher.close(self)
        self._outside.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
