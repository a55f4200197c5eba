"""Serve one address from several processes: ``--workers N``.

One asyncore loop uses one core.  Here N worker processes, forked from the
caller, each build their own server and run their own loop; the kernel
hands every new connection to one of them.  On Linux each worker listens on
a socket of its own, all bound to the same address with SO_REUSEPORT, so
connections are spread evenly and no worker wakes for another's.  Elsewhere
(no SO_REUSEPORT that balances) the workers share one listening socket made
before the fork, and whichever is free accepts.

A worker is an ordinary process: messages reach ``process_message`` of the
server class it built, in that process, so anything shared between
messages (counters, open files) is per worker.

Public names:

    serve(make_server, localaddr, count, timeout=30.0, use_poll=False)
        Run ``count`` workers until they all end; returns an exit status.
        Ctrl-C or SIGTERM stops them all.
    Workers(make_server, localaddr, count, timeout=30.0, use_poll=False)
        The same in steps: start() returns once every worker listens;
        then ``address`` (the port is known even if 0 was asked for),
        ``pids``, wait() and stop().

``make_server(address)`` builds the server on ``address`` and is called
once in each worker (``lambda address: MyServer(address, None)``); like
SMTPServer it must call set_reuse_addr() before bind().  With ``count``
of 1 nothing is forked: the server runs in the calling process.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback

from . import asyncore

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, Callable, List, NoReturn, Optional, Set, Tuple

    # (host, port), or IPv6's (host, port, flowinfo, scope_id).
    _Address = Tuple[Any, ...]
    _MakeServer = Callable[[_Address], object]
del TYPE_CHECKING

__all__ = ['serve', 'Workers']

# Linux balances connections among SO_REUSEPORT listeners; other systems
# either lack the option or give every connection to one of them.
SHARE_PORT = hasattr(socket, 'SO_REUSEPORT') and sys.platform.startswith('linux')


class Workers:
    """``count`` forked processes serving ``localaddr`` (see the module)."""

    def __init__(
        self,
        make_server: _MakeServer,
        localaddr: _Address,
        count: int,
        timeout: float = 30.0,
        use_poll: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError('the number of workers must be at least 1')
        self.make_server = make_server
        self.address = localaddr
        self.count = count
        self.timeout, self.use_poll = timeout, use_poll
        self.pids: List[int] = []
        self._running: Set[int] = set()
        self._reservation: Optional[socket.socket] = None

    # -- in the parent ---------------------------------------------------------

    def start(self) -> Workers:
        """Fork the workers; return once each one listens (or has died)."""
        if self.count == 1:
            self.make_server(self.address)
            return self
        if not hasattr(os, 'fork'):
            raise OSError('more than one worker needs os.fork()')
        if SHARE_PORT:
            self._reserve_address()
            build: Optional[Callable[[], None]] = self._build_own_listener
        else:
            # Made once, here; every worker inherits the listening socket.
            self.make_server(self.address)
            self.address = self._bound_address()
            build = None
        self._parent = os.getpid()
        ready_w: Optional[int]
        ready_r, ready_w = os.pipe()
        try:
            for _ in range(self.count):
                sys.stdout.flush()  # or the child would print it a second time
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    os.close(ready_r)
                    self._run_worker(build, ready_w)  # never returns
                self.pids.append(pid)
                self._running.add(pid)
            os.close(ready_w)
            ready_w = None
            if build is None:
                asyncore.close_all()  # the parent's copy; workers keep theirs
            self._await_readiness(ready_r)
        except BaseException:
            # Half started (a failed fork, Ctrl-C): take down what runs.
            if ready_w is not None:
                os.close(ready_w)
            self.stop()
            self.wait()
            raise
        return self

    def _reserve_address(self) -> None:
        # A bound socket that never listens keeps the port ours (and tells
        # us which one it is, if 0 was asked for) without taking a share of
        # the connections.
        host, port = self.address[:2]
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(self.address)
        self._reservation = sock
        self.address = (host, sock.getsockname()[1]) + tuple(self.address[2:])

    def _bound_address(self) -> _Address:
        for channel in asyncore.socket_map.values():
            if channel.accepting:
                return (self.address[0], channel.socket.getsockname()[1]) + tuple(self.address[2:])
        return self.address

    def _await_readiness(self, ready_r: int) -> None:
        # Each worker writes one byte once it listens; a worker that dies
        # first closes its end without writing.
        ready = 0
        try:
            while ready < self.count and os.read(ready_r, 1):
                ready += 1
        finally:
            os.close(ready_r)

    def wait(self) -> int:
        """Wait for every worker to end; return the first bad exit status.

        When one worker ends on its own, the others are stopped: a server
        that has lost part of its workers is better restarted whole.
        """
        status = 0
        while self._running:
            pid, raw = os.waitpid(-1, 0)
            if pid not in self._running:
                continue  # some other child of the caller's
            self._running.discard(pid)
            code = _exit_code(raw)
            if code and not status:
                status = code
            self.stop(signal.SIGTERM)
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None
        return status

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Send ``signum`` to the workers still running."""
        for pid in list(self._running):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    # -- in a worker -----------------------------------------------------------

    def _build_own_listener(self) -> None:
        if self._reservation is not None:
            self._reservation.close()  # the parent's business
        asyncore.dispatcher._share_port = True
        self.make_server(self.address)

    def _run_worker(self, build: Optional[Callable[[], None]], ready_w: int) -> NoReturn:
        # 0 unless something unexpected happens: a SIGTERM from the parent
        # may land while an interrupt is being handled, and must not turn a
        # clean stop into a failure.
        status = 0
        try:
            # SIGTERM ends the loop like Ctrl-C does, so output is flushed.
            signal.signal(signal.SIGTERM, _exit_quietly)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if build is not None:
                build()
            try:
                os.write(ready_w, b'.')
            except OSError:
                pass  # the parent has stopped waiting (and will stop us)
            os.close(ready_w)
            _loop_while_parent_lives(self._parent, self.timeout, self.use_poll)
        except KeyboardInterrupt:
            pass
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)


def _exit_quietly(signum: int, frame: Optional[FrameType]) -> NoReturn:
    raise SystemExit(0)


def _loop_while_parent_lives(parent: int, timeout: float, use_poll: bool) -> None:
    """asyncore.loop(), that also ends if the parent is killed: a worker
    must not serve on, orphaned, when nobody will stop it.  (Checked after
    each pass, so within ``timeout`` seconds.)"""
    channels = asyncore.socket_map
    while channels and os.getppid() == parent:
        asyncore.loop(timeout, use_poll, count=1)


def _exit_code(raw_status: int) -> int:
    if os.WIFSIGNALED(raw_status):
        return 128 + os.WTERMSIG(raw_status)
    return os.WEXITSTATUS(raw_status)


def serve(
    make_server: _MakeServer,
    localaddr: _Address,
    count: int,
    timeout: float = 30.0,
    use_poll: bool = False,
) -> int:
    """Run ``count`` workers (see the module docstring) until they end.

    Returns 0 when they all stopped cleanly, else the first bad status.
    """
    group = Workers(make_server, localaddr, count, timeout, use_poll)
    if count == 1:
        group.start()
        asyncore.loop(timeout, use_poll)
        return 0
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: group.stop(signum))
    try:
        group.start()
        while True:
            try:
                return group.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached the whole process group already; this is
                # for an interrupt sent to the parent alone.
                group.stop(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
