"""Run an SMTP server in a background thread, for test suites.

    from smtpd_compat.controller import Controller

    with Controller(MyServer) as controller:       # an SMTPServer subclass
        smtplib.SMTP(controller.host, controller.port).sendmail(...)

``Controller(server_factory, host='127.0.0.1', port=0)``:

server_factory
    An ``SMTPServer`` subclass, built as ``cls((host, port), None,
    map=socket_map)``, or any callable ``factory((host, port),
    socket_map)`` that builds a dispatcher on that map, e.g.
    ``lambda address, map: MyServer(address, None, map=map, timeout=5)``.
start()
    Builds the server (in the calling thread, so a bind error is raised
    here), starts the loop thread and returns once the port is listening
    and the loop runs.  Returns the controller.
stop()
    Returns once the loop thread has ended and every socket in its map
    (server, channels, handshakes, helpers) is closed.  Re-raises an error
    that ended the loop.
host, port
    The address served; ``port`` is the bound one after start().
server
    The server built by the factory.

The server gets a socket map of its own, so it never mixes with
``asyncore.socket_map`` or with other controllers.  Usable as a context
manager (start on entry, stop on exit).

Public names: Controller.
"""

from __future__ import annotations

import threading

from . import asyncore
from .wakeup import Waker

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple, Type, Union

    from . import SMTPServer

    _MapType = Dict[int, Any]  # a socket map: descriptor -> dispatcher
    _Address = Tuple[str, int]
    # An SMTPServer subclass, or factory(address, socket_map) -> the server.
    _Factory = Union[Type[SMTPServer], Callable[[_Address, _MapType], Any]]
del TYPE_CHECKING

__all__ = ['Controller']

# How long start() and stop() wait for the loop thread before giving up.
THREAD_WAIT_SECONDS = 30.0


class _Stop(asyncore.ExitNow):
    """Raised in the loop thread to leave asyncore.loop()."""


class Controller:
    def __init__(self, server_factory: _Factory, host: str = '127.0.0.1', port: int = 0) -> None:
        self.server_factory = server_factory
        self.host, self.port = host, port
        self.server: Any = None  # whatever the factory built
        self._map: Optional[_MapType] = None  # the socket map, while running
        self._waker: Optional[Waker] = None
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _build(self, address: _Address, socket_map: _MapType) -> Any:
        # Called with one of two signatures, chosen at run time.  mypy would
        # narrow a name tested with isinstance() to the wrong one, so the
        # call is made through another name, typed for both.
        factory: Callable[..., Any] = self.server_factory
        tested = self.server_factory
        if isinstance(tested, type) and issubclass(tested, asyncore.dispatcher):
            # An SMTPServer subclass: (localaddr, remoteaddr, map=...).
            return factory(address, None, map=socket_map)
        return factory(address, socket_map)

    def start(self) -> Controller:
        if self._thread is not None:
            raise RuntimeError('the controller is already running')
        self._map = {}
        self._error = None
        try:
            self.server = self._build((self.host, self.port), self._map)
            self.port = self.server.socket.getsockname()[1]
            self._waker = Waker(self._map, self._leave_loop)
        except BaseException:
            asyncore.close_all(self._map, ignore_all=True)
            raise
        running = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(running,),
            name='smtpd_compat controller :%d' % self.port,
            daemon=True,
        )
        self._thread.start()
        if not running.wait(THREAD_WAIT_SECONDS):
            raise RuntimeError('the loop thread did not start')
        return self

    def _leave_loop(self) -> None:
        raise _Stop()

    def _run(self, running: threading.Event) -> None:
        running.set()
        try:
            asyncore.loop(timeout=30.0, map=self._map)
        except _Stop:
            pass
        except BaseException as error:  # handed to stop()'s caller
            self._error = error
        finally:
            asyncore.close_all(self._map, ignore_all=True)

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._waker.wake()  # type: ignore[union-attr]  # set with the thread
        thread.join(THREAD_WAIT_SECONDS)
        if thread.is_alive():
            raise RuntimeError('the loop thread did not end')
        self._thread = self._waker = None
        error, self._error = self._error, None
        if error is not None:
            raise error
