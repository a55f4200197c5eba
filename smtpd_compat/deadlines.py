"""Deadlines for an asyncore loop: run a callback when time runs out.

The loop waits in the OS for socket events, as long as its caller's
``timeout`` (30 seconds for ``asyncore.loop()``), and has no timers.  So
that a deadline is kept to the moment, a helper thread sleeps until the
earliest one and then wakes the loop through a ``wakeup.Waker``; the
callbacks themselves always run in the loop's thread.

Deadlines only ever move later (``touch``) or go away (``cancel``), so the
thread may wake the loop too early but never too late: the loop then looks
again and the thread sleeps until the new earliest deadline.

Public names: Deadlines.
"""

from __future__ import annotations

import threading
import time

from .wakeup import Waker

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

    _MapType = Dict[int, Any]  # a socket map: descriptor -> dispatcher
del TYPE_CHECKING

__all__ = ['Deadlines']


class Deadlines:
    """Deadlines of the channels in one socket map.

    set(key, seconds, on_expire)   (re)start *key*'s clock
    touch(key)                     restart it with the same length
    cancel(key)                    forget it
    close()                        stop the thread, leave the map
    close_when_idle()              close() once no deadline is left
    """

    def __init__(self, map: _MapType) -> None:
        self._due: Dict[object, List[Any]] = {}  # key -> [when, seconds, on_expire]
        self._lock = threading.Condition()
        self._alarm_at: Optional[float] = None  # when the thread is to wake the loop
        self._stopped = False
        self._close_when_idle = False
        # The waker is closed with the map (asyncore.close_all); the
        # thread must stop with it.
        self._waker = Waker(map, self._expire, on_close=self._stop_thread)
        self._thread = threading.Thread(
            target=self._sleep_until_due, name='smtpd_compat deadlines', daemon=True
        )
        self._thread.start()

    def set(self, key: object, seconds: float, on_expire: Callable[[], object]) -> None:
        when = time.monotonic() + seconds
        self._due[key] = [when, seconds, on_expire]
        self._arm(when)

    def touch(self, key: object) -> None:
        entry = self._due.get(key)
        if entry is not None:
            entry[0] = time.monotonic() + entry[1]

    def cancel(self, key: object) -> None:
        self._due.pop(key, None)
        if self._close_when_idle and not self._due:
            self.close()

    def close(self) -> None:
        self._waker.close()

    def close_when_idle(self) -> None:
        self._close_when_idle = True
        if not self._due:
            self.close()

    def _stop_thread(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self._thread.join(10)

    def _arm(self, when: float) -> None:
        with self._lock:
            if self._alarm_at is None or when < self._alarm_at:
                self._alarm_at = when
                self._lock.notify()

    def _expire(self) -> None:
        """In the loop: run every callback whose time has come."""
        now = time.monotonic()
        expired = [key for key, (when, _, _) in self._due.items() if when <= now]
        for key in expired:
            entry = self._due.pop(key, None)
            if entry is not None:
                entry[2]()
        if self._due:
            self._arm(min(when for when, _, _ in self._due.values()))
        elif self._close_when_idle:
            self.close()

    def _sleep_until_due(self) -> None:
        with self._lock:
            while not self._stopped:
                if self._alarm_at is None:
                    self._lock.wait()
                    continue
                delay = self._alarm_at - time.monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                self._alarm_at = None
                self._waker.wake()
