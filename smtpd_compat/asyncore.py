"""Event loop and socket channels: a stand-in for the stdlib ``asyncore``.

CPython removed ``asyncore`` in 3.12.  This module reimplements the 3.11
version with the same observable behaviour (state changes, log text, reprs,
errno handling), except that importing it raises no DeprecationWarning.

Public names:

    loop(timeout=30.0, use_poll=False, map=None, count=None)
        Drive the channels in ``map`` until it is empty or ``count`` runs.
    poll, poll2, poll3
        One pass of the loop using select() (``poll``) or poll()
        (``poll2``; ``poll3`` is an old alias of it).
    read, write, _exception, readwrite
        Deliver one event to a channel, routing failures to handle_error().
    dispatcher
        Thin wrapper making a non-blocking socket an event-driven channel.
    dispatcher_with_send
        A dispatcher that buffers what send() is given.
    file_wrapper, file_dispatcher  (POSIX only)
        Treat a file descriptor such as a pipe as a channel.
    close_all(map=None, ignore_all=False)
        Close every channel in a map and empty it.
    compact_traceback()
        Summarise the exception being handled on one line.
    ExitNow
        Raise it from a handler to get out of loop().
    socket_map
        The map channels join when none is given.

Sockets are created through this module's global ``socket`` name, looked up
at call time, so tests can swap in a mock socket module.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
import warnings
from errno import (
    EAGAIN,
    EALREADY,
    EBADF,
    ECONNABORTED,
    ECONNRESET,
    EEXIST,
    EINPROGRESS,
    EINVAL,
    EISCONN,
    ENOTCONN,
    EPERM,
    EPIPE,
    ESHUTDOWN,
    EWOULDBLOCK,
    errorcode,
)

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type, Union

    from _typeshed import FileDescriptorLike, ReadableBuffer

    # A socket map: descriptor -> channel (any object with the dispatcher
    # methods the loop calls).
    _MapType = Dict[int, Any]
    # ``socket`` is also the name of dispatcher's attribute.
    _Socket = socket.socket
    _Waiter = Union['_EpollWaiter', '_PollWaiter', '_SelectWaiter']
    # fd -> (channel, mask), as _Poller keeps its registrations.
    _Watched = Dict[int, Tuple[Any, int]]
    # What _Poller.wait() returns: (fd, channel, mask, events).
    _Ready = List[Tuple[int, Any, int, int]]
del TYPE_CHECKING

# errno values meaning "the peer went away": a send or recv failing with one
# of these closes the channel quietly instead of reporting an error.
_DISCONNECTED = frozenset({ECONNRESET, ENOTCONN, ESHUTDOWN, ECONNABORTED, EPIPE, EBADF})

# importlib.reload() re-executes this file in the existing namespace; keeping
# the old map means channels registered before a reload are not orphaned.
socket_map: _MapType = globals().get('socket_map', {})


# This file lives inside a package, yet it stands in for top-level stdlib
# modules.  Wherever CPython prints a module name (reprs, warnings) we print
# the stdlib name, so output reads exactly as it would with CPython.
_PACKAGE = __name__.rpartition('.')[0]
_STDLIB_MODULE_NAMES = {__name__: 'asyncore'}
if _PACKAGE:
    _STDLIB_MODULE_NAMES[_PACKAGE] = 'smtpd'
    _STDLIB_MODULE_NAMES[_PACKAGE + '.asynchat'] = 'asynchat'


def _public_class_name(cls: type) -> str:
    module = _STDLIB_MODULE_NAMES.get(cls.__module__, cls.__module__)
    return '%s.%s' % (module, cls.__qualname__)


def _strerror(err: int) -> str:
    """Describe errno ``err``, even where os.strerror() cannot."""
    try:
        return os.strerror(err)
    except (ValueError, OverflowError, NameError):
        symbol = errorcode.get(err)
        if symbol is not None:
            return symbol
        return "Unknown error %s" % err


class ExitNow(Exception):
    """Raised by a handler to stop the loop; never routed to handle_error."""


# Exceptions that must escape the loop rather than be swallowed by a
# channel's handle_error().
_reraised_exceptions = (ExitNow, KeyboardInterrupt, SystemExit)


# ---------------------------------------------------------------------------
# Delivering events to channels
# ---------------------------------------------------------------------------


def _deliver(obj: Any, handler_name: str) -> None:
    # The handler is looked up inside the try so that a channel lacking it
    # is treated like any other failing handler.
    try:
        getattr(obj, handler_name)()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


def read(obj: Any) -> None:
    """Tell ``obj`` it is readable."""
    # As _deliver(), spelt out: this runs for nearly every event.
    try:
        obj.handle_read_event()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


def write(obj: Any) -> None:
    """Tell ``obj`` it is writable."""
    _deliver(obj, 'handle_write_event')


def _exception(obj: Any) -> None:
    """Tell ``obj`` select() flagged an exceptional condition on it."""
    _deliver(obj, 'handle_expt_event')


def _act_on_poll_flags(obj: Any, flags: int) -> None:
    # The POLL* constants are read at call time: not every platform has
    # them, and a missing one must fail like a handler would.  Handlers are
    # looked up only when their bit is set.
    handlers_by_mask = (
        (select.POLLIN, 'handle_read_event'),
        (select.POLLOUT, 'handle_write_event'),
        (select.POLLPRI, 'handle_expt_event'),
        (select.POLLHUP | select.POLLERR | select.POLLNVAL, 'handle_close'),
    )
    for mask, handler_name in handlers_by_mask:
        if flags & mask:
            getattr(obj, handler_name)()


def readwrite(obj: Any, flags: int) -> None:
    """Deliver every event that poll() reported in ``flags`` to ``obj``."""
    try:
        _act_on_poll_flags(obj, flags)
    except OSError as exc:
        # A vanished peer is an ordinary close, anything else is an error.
        if exc.errno in _DISCONNECTED:
            obj.handle_close()
        else:
            obj.handle_error()
    except _reraised_exceptions:
        raise
    except BaseException:
        obj.handle_error()


# ---------------------------------------------------------------------------
# Waiting for events
#
# CPython asked every channel for readable() and writable() and rebuilt its
# select() lists on every pass: work that grows with the number of channels
# even when one of them is busy, and select() cannot watch a descriptor of
# 1024 or more.  Here each map gets a _Poller that keeps its registrations
# with the OS across passes (epoll where there is one, else poll(), else
# select()) and asks a channel's predicates again only when they may have
# changed: it joined the map, it had an event, or it queued output.  A
# channel whose readable()/writable() is not one of ours is asked before
# every pass, as CPython asks everyone, since only its author knows what
# they depend on.  Which events reach which handler stays CPython's.
# ---------------------------------------------------------------------------

# Event bits as poll() spells them (epoll uses the same values).
_IN: int = getattr(select, 'POLLIN', 1)
_PRI: int = getattr(select, 'POLLPRI', 2)
_OUT: int = getattr(select, 'POLLOUT', 4)
_ERR: int = getattr(select, 'POLLERR', 8)
_HUP: int = getattr(select, 'POLLHUP', 16)
_NVAL: int = getattr(select, 'POLLNVAL', 32)

# What select() reports for those bits (as the Linux kernel maps them):
# hang-ups and errors make a descriptor readable, errors make it writable.
_SELECT_READABLE = _IN | _HUP | _ERR
_SELECT_WRITABLE = _OUT | _ERR


class _EpollWaiter:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.register = self._epoll.register
        self.modify = self._epoll.modify
        self.unregister = self._epoll.unregister
        self.wait = self._epoll.poll  # seconds, None blocks
        self.close = self._epoll.close


class _PollWaiter:
    def __init__(self) -> None:
        self._poll = select.poll()
        self.register = self.modify = self._poll.register
        self.unregister = self._poll.unregister
        self.close = lambda: None

    def wait(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        return self._poll.poll(None if timeout is None else timeout * 1000)


class _SelectWaiter:
    """Last resort (e.g. Windows): select() over the registered sets."""

    def __init__(self) -> None:
        self._masks: Dict[int, int] = {}
        self.close = self._masks.clear

    def register(self, fd: int, mask: int) -> None:
        self._masks[fd] = mask

    modify = register

    def unregister(self, fd: int) -> None:
        del self._masks[fd]

    def wait(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        masks = self._masks
        r, w, x = select.select(
            [fd for fd, m in masks.items() if m & _IN],
            [fd for fd, m in masks.items() if m & _OUT],
            [fd for fd, m in masks.items() if m & _PRI],
            timeout,
        )
        events = dict.fromkeys(r, _IN)
        for fd in w:
            events[fd] = events.get(fd, 0) | _OUT
        for fd in x:
            events[fd] = events.get(fd, 0) | _PRI
        return list(events.items())


def _new_waiter() -> _Waiter:
    same_bits = (
        getattr(select, 'EPOLLIN', None) == _IN and getattr(select, 'EPOLLOUT', None) == _OUT
    )
    if hasattr(select, 'epoll') and same_bits:
        return _EpollWaiter()
    if hasattr(select, 'poll'):
        return _PollWaiter()
    return _SelectWaiter()


# The predicates of our own classes, whose answers depend only on channel
# state that changes in handlers or in methods that call
# _recheck_interest(); asynchat adds its own on import.
_KNOWN_READABLE: Set[Callable[[Any], object]] = set()
_KNOWN_WRITABLE: Set[Callable[[Any], object]] = set()


def _predicates_are_ours(obj: Any) -> bool:
    cls = type(obj)
    if (
        getattr(cls, 'readable', None) not in _KNOWN_READABLE
        or getattr(cls, 'writable', None) not in _KNOWN_WRITABLE
    ):
        return False
    own = getattr(obj, '__dict__', {})
    return 'readable' not in own and 'writable' not in own


class _Poller:
    """One map's registrations with the OS, kept from pass to pass."""

    def __init__(self) -> None:
        # None until prepare() makes one, and again after close(); the
        # methods that use it expect one (hence their type: ignores).
        self.waiter: Optional[_Waiter] = None
        self.use_poll: Optional[bool] = None  # the mode last pass used: masks differ
        self.known: _MapType = {}  # fd -> channel, as the map was last seen
        self.watched: _Watched = {}  # fd -> (channel, mask) the OS is told of
        self.unwaitable: _Watched = {}  # fd -> (channel, mask) the OS won't watch
        self.stale: _MapType = {}  # fd -> channel whose predicates to re-ask
        self.volatile: _MapType = {}  # fd -> channel whose predicates aren't ours
        self.resync = True  # re-read the whole map before the next wait

    # -- told by dispatchers as they join and leave the map ------------------

    def added(self, fd: int, channel: Any) -> None:
        if fd in self.watched or fd in self.unwaitable:
            # Maybe a new socket on a reused descriptor: register afresh.
            self._unwatch(fd)
        self.known[fd] = channel
        self.stale[fd] = channel

    def removed(self, fd: int) -> None:
        # Unregister now, while the descriptor still names this socket.
        self.known.pop(fd, None)
        self.volatile.pop(fd, None)
        self._unwatch(fd)

    # -- keeping the OS's view up to date -----------------------------------

    def _unwatch(self, fd: int) -> None:
        if self.unwaitable.pop(fd, None) is None and self.watched.pop(fd, None) is not None:
            try:
                self.waiter.unregister(fd)  # type: ignore[union-attr]
            except (OSError, KeyError, ValueError):
                pass  # already closed, and so already dropped by the OS

    def _update(self, fd: int, channels: _MapType, fresh_look: bool = False) -> None:
        channel = channels.get(fd)
        if channel is None:
            self.volatile.pop(fd, None)
            self._unwatch(fd)
            return
        entry = self.watched.get(fd)
        if fresh_look or entry is None or entry[0] is not channel:
            # A newcomer (or a look at everything): whose predicates?
            if _predicates_are_ours(channel):
                self.volatile.pop(fd, None)
            else:
                self.volatile[fd] = channel
        # Asked in CPython's order: readable(), writable(), then accepting.
        readable = channel.readable()
        writable = channel.writable()
        if readable and getattr(channel, '_flushing_before_close', False):
            readable = False  # at end of input; see dispatcher.recv()
        mask = _IN | _PRI if readable else 0
        if writable:
            if not channel.accepting:
                mask |= _OUT
            if not self.use_poll:
                mask |= _PRI  # select() watches it for exceptions
        entry = self.watched.get(fd) or self.unwaitable.get(fd)
        if entry is not None and entry[0] is channel and entry[1] == mask:
            return
        if not mask:
            self._unwatch(fd)
            return
        if fd in self.watched:
            try:
                self.waiter.modify(fd, mask)  # type: ignore[union-attr]
            except OSError:
                del self.watched[fd]  # the OS dropped it (closed)
            else:
                self.watched[fd] = (channel, mask)
                return
        self.unwaitable.pop(fd, None)
        self._register(fd, channel, mask)

    def _register(self, fd: int, channel: Any, mask: int) -> None:
        try:
            self.waiter.register(fd, mask)  # type: ignore[union-attr]
        except OSError as why:
            if why.errno == EEXIST:
                self.waiter.modify(fd, mask)  # type: ignore[union-attr]
            elif why.errno == EPERM:
                # Regular files: poll() and select() call them always
                # ready, epoll refuses them.  Do as the former do.
                self.unwaitable[fd] = (channel, mask)
                return
            elif why.errno == EBADF and self.use_poll:
                self.unwaitable[fd] = (channel, _NVAL)  # as poll() says
                return
            else:
                raise  # select() too fails on a closed descriptor
        self.watched[fd] = (channel, mask)

    def _resync(self, channels: _MapType) -> None:
        self.resync = False
        self.known = dict(channels)
        for fd in list(self.watched) + list(self.unwaitable):
            if fd not in self.known:
                self._unwatch(fd)
        self.stale = dict(self.known)

    def prepare(self, channels: _MapType, use_poll: bool) -> None:
        if self.waiter is None:
            self.waiter = _new_waiter()
            self.watched.clear()
            self.unwaitable.clear()
            self.resync = True
        if use_poll != self.use_poll:
            self.use_poll = use_poll
            self.resync = True
        fresh_look = self.resync or len(channels) != len(self.known)
        if fresh_look:
            # Idle, or someone changed the map behind add_channel()'s back.
            self._resync(channels)
        stale, self.stale = self.stale, {}
        try:
            for fd in stale:
                self._update(fd, channels, fresh_look)
            if self.volatile:
                for fd in list(self.volatile):
                    self._update(fd, channels)
        except BaseException:
            self.resync = True  # a predicate failed: start over next time
            raise

    def wait(self, timeout: Optional[float]) -> _Ready:
        """Return [(fd, channel, mask, events)] ready within ``timeout``."""
        ready: _Ready = []
        if self.unwaitable:
            for fd, (channel, mask) in self.unwaitable.items():
                if mask & (_IN | _OUT | _NVAL):
                    ready.append((fd, channel, mask, mask & (_IN | _OUT | _NVAL)))
            if ready:
                timeout = 0
        events = self.waiter.wait(timeout)  # type: ignore[union-attr]
        watched = self.watched
        for fd, flags in events:
            entry = watched.get(fd)
            if entry is not None:
                ready.append((fd, entry[0], entry[1], flags))
        if not events:
            # An idle moment: take a fresh look at every channel, so that
            # state changed where we could not see it is noticed.
            self.resync = True
        return ready

    def close(self) -> None:
        if self.waiter is not None:
            self.waiter.close()
            self.waiter = None
        # Nothing is registered with a waiter that is gone: a channel
        # closed now has nothing to unregister, and the next pass
        # registers every channel with a new one (see prepare()).
        self.watched.clear()
        self.unwaitable.clear()
        self.resync = True


# id(map) -> (map, poller).  The map is held so that its id stays its own;
# the entry goes when the map is found empty (or is passed to close_all).
_pollers: Dict[int, Tuple[_MapType, _Poller]] = globals().get('_pollers', {})


def _poller_for(channels: _MapType) -> _Poller:
    entry = _pollers.get(id(channels))
    if entry is None:
        entry = _pollers[id(channels)] = (channels, _Poller())
    return entry[1]


def _release_poller(channels: _MapType) -> None:
    entry = _pollers.pop(id(channels), None)
    if entry is not None:
        entry[1].close()


def _after_fork_in_child() -> None:
    # The child shares the parent's epoll instance: changing it would change
    # the parent's registrations.  Start afresh with a waiter of our own.
    for _, poller in list(_pollers.values()):
        poller.close()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def poll(timeout: float = 0.0, map: Optional[_MapType] = None) -> None:
    """Wait up to ``timeout`` seconds and dispatch events as select() would."""
    if map is None:
        map = socket_map
    if not map:
        _release_poller(map)
        return
    entry = _pollers.get(id(map))
    poller = entry[1] if entry is not None else _poller_for(map)
    poller.prepare(map, False)
    if not (poller.watched or poller.unwaitable):
        # Nothing to wait on, but callers still expect the pass to take
        # about ``timeout`` seconds.
        time.sleep(timeout)
        return
    if timeout is not None and timeout < 0:
        raise ValueError('timeout must be non-negative')  # as select()
    ready = poller.wait(timeout)
    stale = poller.stale
    # An event belongs to the channel registered for it.  If that one has
    # left the map since (a handler earlier in this pass closed it, and
    # maybe a new one took its descriptor), the event is dropped: hence the
    # "map.get(fd) is channel" tests.  select() reports all readers, then
    # all writers, then exceptions, and so do we.
    more = 0
    for fd, channel, mask, events in ready:
        if events & _SELECT_READABLE and mask & _IN and map.get(fd) is channel:
            read(channel)
        more |= events
        stale[fd] = channel  # its predicates may answer differently now
    if more & _SELECT_WRITABLE:
        for fd, channel, mask, events in ready:
            if events & _SELECT_WRITABLE and mask & _OUT and map.get(fd) is channel:
                write(channel)
    if more & _PRI:
        for fd, channel, mask, events in ready:
            if events & _PRI and mask & _PRI and map.get(fd) is channel:
                _exception(channel)


def poll2(timeout: float = 0.0, map: Optional[_MapType] = None) -> None:
    """Like poll(), but dispatches as poll() would (see readwrite())."""
    if map is None:
        map = socket_map
    if timeout is not None:
        timeout = int(timeout * 1000) / 1000.0  # poll() counts whole ms
    if not map:
        _release_poller(map)
        return
    entry = _pollers.get(id(map))
    poller = entry[1] if entry is not None else _poller_for(map)
    poller.prepare(map, True)
    stale = poller.stale
    for fd, channel, _mask, events in poller.wait(timeout):
        if map.get(fd) is channel:  # see poll()
            readwrite(channel, events)
        stale[fd] = channel


poll3 = poll2  # kept because old code still calls it by this name


def loop(
    timeout: float = 30.0,
    use_poll: bool = False,
    map: Optional[_MapType] = None,
    count: Optional[int] = None,
) -> None:
    """Run passes until ``map`` is empty, or at most ``count`` passes."""
    if map is None:
        map = socket_map
    if use_poll and hasattr(select, 'poll'):
        run_once = poll2
    else:
        run_once = poll
    passes_left = count
    while map and (passes_left is None or passes_left > 0):
        run_once(timeout, map)
        if passes_left is not None:
            passes_left = passes_left - 1
    if not map:
        _release_poller(map)


# ---------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------

# errno values from close() that only mean there was nothing left to close.
_ALREADY_CLOSED = (ENOTCONN, EBADF)

# errno values from accept() that mean "no connection to hand out now".
_NOTHING_TO_ACCEPT = (EWOULDBLOCK, ECONNABORTED, EAGAIN)

# errno values from connect_ex() that mean the connection is under way.
_CONNECT_PENDING = (EINPROGRESS, EALREADY, EWOULDBLOCK)


def _pending_error(sock: Optional[_Socket]) -> int:
    # SO_ERROR holds the outcome of a non-blocking connect, or any other
    # error the socket has latched.  ``socket`` is looked up at call time
    # so a substituted socket module supplies the constants.
    # Without a socket this raises AttributeError (for handle_error()), as
    # CPython's inline self.socket.getsockopt() does.
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # type: ignore[union-attr]


def _warn_unhandled(channel: dispatcher, what: str) -> None:
    channel.log_info('unhandled %s event' % what, 'warning')


class dispatcher:
    """A non-blocking socket that reacts to events from loop().

    Subclasses override the handle_*() methods and the readable() and
    writable() predicates; the socket methods wrap the socket's own and
    turn "would block" and "peer gone" conditions into events.
    """

    # Channel state.  Listening sockets set ``accepting``; ``connecting``
    # covers a non-blocking connect() that has not completed yet.
    addr: Optional[Union[Tuple[Any, ...], str]] = None
    connected = False
    connecting = False
    accepting = False
    closing = False

    debug = False  # dispatcher_with_send logs each send() when set
    # log_info() types that are not printed.
    ignore_log_types = frozenset({'warning'})

    def __init__(self, sock: Optional[_Socket] = None, map: Optional[_MapType] = None) -> None:
        self._map: _MapType = socket_map if map is None else map
        self._fileno: Optional[int] = None
        if not sock:
            self.socket: Optional[_Socket] = None
            return
        # The socket may come from blocking code (e.g. accept()); the loop
        # must never block on it.
        sock.setblocking(False)
        self.set_socket(sock, map)
        self.connected = True
        try:
            peer = sock.getpeername()
        except OSError as err:
            if err.errno not in (ENOTCONN, EINVAL):
                # Broken in some way we cannot recover from: make sure the
                # loop never polls it, then let the caller know.
                self.del_channel(map)
                raise
            # Merely not connected yet, which is allowed.
            self.connected = False
        else:
            self.addr = peer

    def __repr__(self) -> str:
        words = [_public_class_name(self.__class__)]
        if self.accepting and self.addr:
            words.append('listening')
        elif self.connected:
            words.append('connected')
        if self.addr is not None:
            try:
                words.append('%s:%d' % self.addr)
            except TypeError:
                # Not a (host, port) pair, e.g. a UNIX path or IPv6 tuple.
                words.append(repr(self.addr))
        return '<%s at %#x>' % (' '.join(words), id(self))

    # -- membership of the socket map ---------------------------------------

    def set_socket(self, sock: _Socket, map: Optional[_MapType] = None) -> None:
        self.socket = sock
        self._fileno = sock.fileno()
        self.add_channel(map)

    def add_channel(self, map: Optional[_MapType] = None) -> None:
        target = self._map if map is None else map
        # Called before set_socket(), CPython files the channel under None;
        # so do we.
        target[self._fileno] = self  # type: ignore[index]
        entry = _pollers.get(id(target))
        if entry is not None:
            entry[1].added(self._fileno, self)  # type: ignore[arg-type]

    def del_channel(self, map: Optional[_MapType] = None) -> None:
        target = self._map if map is None else map
        fd = self._fileno
        if fd in target:
            del target[fd]
            entry = _pollers.get(id(target))
            if entry is not None:
                entry[1].removed(fd)
        self._fileno = None

    def _recheck_interest(self) -> None:
        """Have the loop ask readable()/writable() again before it waits.

        It asks after every event anyway; state changed outside one (output
        queued from elsewhere, a connect() begun) must say so.
        """
        entry = _pollers.get(id(self._map))
        if entry is not None and self._fileno is not None:
            entry[1].stale[self._fileno] = self

    # -- creating and configuring the socket ----------------------------------

    # The socket methods below use self.socket as CPython's do: before there
    # is one (it is None), they raise AttributeError.  Hence their
    # "type: ignore[union-attr]"s.

    def create_socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> None:
        # The defaults are bound once from the real module, but the socket
        # itself is built through the module global, which tests replace.
        self.family_and_type = family, type
        new_sock = socket.socket(family, type)
        new_sock.setblocking(False)
        self.set_socket(new_sock)

    def set_reuse_addr(self) -> None:
        """Ask for SO_REUSEADDR so a restarted server can rebind its port."""
        try:
            current = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)  # type: ignore[union-attr]
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, current | 1)  # type: ignore[union-attr]
        except OSError:
            pass  # best effort: not every platform supports it
        if self._share_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # type: ignore[union-attr]

    # True in the processes of smtpd_compat.workers: each one's listening
    # socket joins the others' on one address, and the kernel spreads the
    # connections among them.
    _share_port = False

    # -- socket operations ----------------------------------------------------

    def bind(self, addr: Union[Tuple[Any, ...], str]) -> None:
        self.addr = addr
        return self.socket.bind(addr)  # type: ignore[union-attr, return-value]

    def listen(self, num: int) -> None:
        self.accepting = True
        self._recheck_interest()
        # Windows rejects larger backlogs from this API.
        backlog = min(num, 5) if os.name == 'nt' else num
        return self.socket.listen(backlog)  # type: ignore[union-attr, return-value]

    def accept(self) -> Optional[Tuple[_Socket, Any]]:
        """Return (conn, address), or None if no connection is ready."""
        try:
            conn, addr = self.socket.accept()  # type: ignore[union-attr]
        except OSError as why:
            if why.errno not in _NOTHING_TO_ACCEPT:
                raise
            return None  # the client gave up, or nothing was queued
        except TypeError:
            return None  # accept() handed back None rather than a pair
        return conn, addr

    def connect(self, address: Union[Tuple[Any, ...], str]) -> None:
        self.connected = False
        self.connecting = True
        self._recheck_interest()
        err = self.socket.connect_ex(address)  # type: ignore[union-attr]
        if err in _CONNECT_PENDING or (err == EINVAL and os.name == 'nt'):
            # Completion is reported later as a read or write event.
            self.addr = address
        elif err in (0, EISCONN):
            self.addr = address
            self.handle_connect_event()
        else:
            raise OSError(err, errorcode[err])

    def recv(self, buffer_size: int) -> bytes:
        """Receive up to ``buffer_size`` bytes; b'' once the peer is gone."""
        try:
            data = self.socket.recv(buffer_size)  # type: ignore[union-attr]
            if data:
                return data
            # A readable socket that yields nothing means the peer closed.
            self._input_ended()
        except OSError as why:
            if why.errno not in _DISCONNECTED:
                raise
            self.handle_close()
        return b''

    def send(self, data: ReadableBuffer) -> int:
        """Send what the socket will take; 0 if it would block or is gone."""
        try:
            return self.socket.send(data)  # type: ignore[union-attr]
        except OSError as why:
            if why.errno == EWOULDBLOCK:
                return 0
            if why.errno in _DISCONNECTED:
                self.handle_close()
                return 0
            raise

    # -- the end of the peer's input ------------------------------------------

    # Set while queued output is written out after the peer's end of input;
    # the loop stops asking for reads meanwhile.
    _flushing_before_close = False

    def _has_queued_output(self) -> bool:
        return False  # a plain dispatcher queues nothing

    def _input_ended(self) -> None:
        # CPython closed at once, dropping replies still queued for a client
        # that had merely half-closed (shutdown(SHUT_WR)) and was waiting for
        # them.  If output is queued, and writable() says it will be
        # written, close once it is out (see _output_drained()).
        if self._has_queued_output() and self.writable():
            self._flushing_before_close = True
            self._recheck_interest()
        else:
            self.handle_close()

    def _output_drained(self) -> None:
        if self._flushing_before_close and self.connected:
            self.handle_close()

    def close(self) -> None:
        self.connected = self.accepting = self.connecting = False
        self.del_channel()
        sock = self.socket
        if sock is None:
            return
        try:
            sock.close()
        except OSError as why:
            if why.errno not in _ALREADY_CLOSED:
                raise

    # -- predicates consulted by the loop ------------------------------------

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    # -- events as the loop delivers them -------------------------------------

    def handle_write_event(self) -> None:
        if self.accepting:
            return  # listening sockets have nothing to write; ignore it
        if not self.connected and self.connecting:
            self.handle_connect_event()
        self.handle_write()

    def handle_read_event(self) -> None:
        if self.accepting:
            # A listening socket is never "connected"; being readable means
            # a new connection is waiting.
            self.handle_accept()
            return
        if not self.connected and self.connecting:
            self.handle_connect_event()
        self.handle_read()

    def handle_expt_event(self) -> None:
        # An exceptional condition is either a latched socket error or
        # out-of-band data; only the latter is worth handing to the user.
        if _pending_error(self.socket) != 0:
            self.handle_close()
        else:
            self.handle_expt()

    def handle_connect_event(self) -> None:
        err = _pending_error(self.socket)
        if err != 0:
            raise OSError(err, _strerror(err))
        self.handle_connect()
        self.connected, self.connecting = True, False

    def handle_error(self) -> None:
        _, exc_type, exc_value, tb_summary = compact_traceback()
        try:
            self_repr = repr(self)
        except BaseException:
            # A broken user __repr__ must not hide the original error.
            self_repr = '<__repr__(self) failed for object at %0x>' % id(self)
        self.log_info(
            'uncaptured python exception, closing channel %s (%s:%s %s)'
            % (self_repr, exc_type, exc_value, tb_summary),
            'error',
        )
        self.handle_close()

    # -- user handlers: defaults only report that nobody handled the event -

    def handle_accepted(self, sock: _Socket, addr: Any) -> None:
        sock.close()  # nobody wants the connection: don't leak it
        _warn_unhandled(self, 'accepted')

    def handle_accept(self) -> None:
        pair = self.accept()
        if pair is not None:
            self.handle_accepted(*pair)

    def handle_connect(self) -> None:
        _warn_unhandled(self, 'connect')

    def handle_read(self) -> None:
        _warn_unhandled(self, 'read')

    def handle_write(self) -> None:
        _warn_unhandled(self, 'write')

    def handle_expt(self) -> None:
        _warn_unhandled(self, 'incoming priority')

    def handle_close(self) -> None:
        _warn_unhandled(self, 'close')
        self.close()

    # -- logging: override these to route output elsewhere -------------------

    def log_info(self, message: Any, type: str = 'info') -> None:
        """Report a notable condition (to stdout) unless its type is muted."""
        if type in self.ignore_log_types:
            return
        print('%s: %s' % (type, message))

    def log(self, message: Any) -> None:
        """Record routine activity (to stderr)."""
        sys.stderr.write('log: %s\n' % str(message))


class dispatcher_with_send(dispatcher):
    """A dispatcher whose send() queues data and flushes it as it can.

    Enough for simple clients; asynchat.async_chat does more.
    """

    # Upper bound on what one socket send is offered.
    _SEND_CHUNK = 65536

    def __init__(self, sock: Optional[_Socket] = None, map: Optional[_MapType] = None) -> None:
        dispatcher.__init__(self, sock, map)
        self.out_buffer = b''

    def send(self, data: bytes) -> None:  # type: ignore[override]  # CPython's: queues, returns None
        if self.debug:
            self.log_info('sending %r' % (data,))
        self.out_buffer = self.out_buffer + data
        self.initiate_send()

    def writable(self) -> bool:
        # Until connected we must hear the write event that completes the
        # connection; afterwards only while output is pending.
        # As in CPython: the length of the buffer, not a bool.
        return (not self.connected) or len(self.out_buffer)  # type: ignore[return-value]

    def handle_write(self) -> None:
        self.initiate_send()

    def initiate_send(self) -> None:
        chunk = self.out_buffer[: self._SEND_CHUNK]
        sent = dispatcher.send(self, chunk)
        self.out_buffer = self.out_buffer[sent:]
        if self.out_buffer:
            self._recheck_interest()  # now writable(): wait to send more
        else:
            self._output_drained()

    def _has_queued_output(self) -> bool:
        return bool(self.out_buffer)


_KNOWN_READABLE.add(dispatcher.readable)
_KNOWN_WRITABLE.update((dispatcher.writable, dispatcher_with_send.writable))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def compact_traceback() -> Tuple[Tuple[str, str, str], Type[BaseException], BaseException, str]:
    """Summarise the exception being handled.

    Returns ((file, function, line), type, value, text), where the triple
    names the innermost frame and ``text`` lists every frame as
    "[file|function|line]".
    """
    exc_type, exc_value, tb = sys.exc_info()
    if not tb:
        raise AssertionError("traceback does not exist")
    frames: List[Tuple[str, str, str]] = []
    while tb:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, str(tb.tb_lineno)))
        tb = tb.tb_next
    text = ' '.join('[%s|%s|%s]' % frame for frame in frames)
    # exc_info() is all or nothing: with a traceback come a type and value.
    return frames[-1], exc_type, exc_value, text  # type: ignore[return-value]


def close_all(map: Optional[_MapType] = None, ignore_all: bool = False) -> None:
    """Close every channel in ``map`` (default: socket_map), then empty it.

    A channel whose socket is already closed (EBADF) is skipped silently;
    other failures propagate unless ``ignore_all`` is true.
    """
    if map is None:
        map = socket_map
    for channel in list(map.values()):
        try:
            channel.close()
        except OSError as exc:
            if exc.errno != EBADF and not ignore_all:
                raise
        except _reraised_exceptions:
            raise
        except BaseException:
            if not ignore_all:
                raise
    map.clear()
    _release_poller(map)


# ---------------------------------------------------------------------------
# File descriptors as channels (POSIX only)
#
# select() says little useful about regular files, but pipes, terminals and
# the like behave like sockets for our purposes.
# ---------------------------------------------------------------------------


def _as_fd(fd_or_file: FileDescriptorLike) -> int:
    # A file object is as good as its descriptor.  As CPython, ask it, and
    # take what has no fileno() for the descriptor itself.
    try:
        return fd_or_file.fileno()  # type: ignore[union-attr]
    except AttributeError:
        return fd_or_file  # type: ignore[return-value]


if os.name == 'posix':

    class file_wrapper:
        """Give a file descriptor just enough of the socket API for us.

        The descriptor is duplicated, so the caller keeps ownership of the
        one it passed in.
        """

        def __init__(self, fd: int) -> None:
            self.fd = os.dup(fd)

        def __repr__(self) -> str:
            # Same text as object.__repr__, with the stdlib module name.
            return '<%s object at %#x>' % (_public_class_name(self.__class__), id(self))

        def fileno(self) -> int:
            return self.fd

        def close(self) -> None:
            if self.fd < 0:
                return
            # Mark closed first: if os.close() fails, a second close() (or
            # __del__) must not try the same descriptor again.
            fd, self.fd = self.fd, -1
            os.close(fd)

        def __del__(self) -> None:
            # Like an unclosed file object: warn, then release the fd.
            if self.fd >= 0:
                message = "unclosed file %r" % (self,)
                warnings.warn(message, ResourceWarning, source=self, stacklevel=1)
            self.close()

        def getsockopt(self, level: int, optname: int, buflen: Optional[int] = None) -> int:
            # The loop only ever asks for the pending error, and a file
            # never has one.
            asks_for_error = level == socket.SOL_SOCKET and optname == socket.SO_ERROR
            if asks_for_error and not buflen:
                return 0
            raise NotImplementedError("Only asyncore specific behaviour implemented.")

        def send(self, *args: ReadableBuffer) -> int:
            return os.write(self.fd, *args)

        def recv(self, *args: int) -> bytes:
            return os.read(self.fd, *args)

        # File-style spellings; they stay bound to these implementations.
        write = send
        read = recv

    class file_dispatcher(dispatcher):
        """A dispatcher over a file descriptor (or object with fileno())."""

        def set_file(self, fd: int) -> None:
            # A stand-in for a socket, as in CPython.
            self.socket = file_wrapper(fd)  # type: ignore[assignment]
            self._fileno = self.socket.fileno()  # type: ignore[union-attr]
            self.add_channel()

        def __init__(self, fd: FileDescriptorLike, map: Optional[_MapType] = None) -> None:
            dispatcher.__init__(self, None, map)
            self.connected = True
            fd = _as_fd(fd)
            self.set_file(fd)
            # The duplicate shares the open file description, so this makes
            # our copy non-blocking too.
            os.set_blocking(fd, False)
