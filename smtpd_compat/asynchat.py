r"""Line- and record-oriented channels: a stand-in for the stdlib ``asynchat``.

CPython removed ``asynchat`` in 3.12.  This module reimplements the 3.11
version on top of smtpd_compat's own asyncore, with the same observable
behaviour, except that importing it raises no DeprecationWarning.

An async_chat splits its input at a "terminator" (for example b'\r\n' for
command lines, b'\r\n.\r\n' for a dot-terminated body, or a byte count),
feeding the bytes before it to collect_incoming_data() and then calling
found_terminator().  Output is queued with push() or push_with_producer()
and written as the socket accepts it.

Public names:

    async_chat
        Abstract channel; subclasses implement collect_incoming_data() and
        found_terminator().
    simple_producer
        Hands out a bytes object in pieces through more().
    find_prefix_at_end(haystack, needle)
        Length of the longest proper prefix of ``needle`` that ends
        ``haystack``.
"""

from __future__ import annotations

import socket
from collections import deque

from . import asyncore

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AnyStr, Deque, List, Optional, Protocol, Union

    class _Producer(Protocol):
        def more(self) -> bytes: ...

    # Bytes-like output, as push() accepts it.
    _Buffer = Union[bytes, bytearray, memoryview]
    # What producer_fifo holds: output, producers, and None, the
    # close_when_done() marker.
    _Entry = Union[_Buffer, _Producer, None]
del TYPE_CHECKING

# The socket class itself, read now: tests swap asyncore's ``socket`` name
# for a stand-in module.
_REAL_SOCKET = socket.socket


class async_chat(asyncore.dispatcher):
    """A channel that reads up to terminators and writes a queue of output.

    Subclasses must provide collect_incoming_data() and found_terminator().
    The terminator may be bytes, a str (encoded with ``encoding`` when
    ``use_encoding`` is set), a non-negative int (a byte count) or None
    (no framing: everything goes to collect_incoming_data()).
    """

    ac_in_buffer_size = 65536  # most bytes asked of one recv()
    ac_out_buffer_size = 65536  # most bytes offered to one send()

    # Mixing str into a bytes protocol is usually a bug, so silently
    # encoding str is opt-in.
    use_encoding = 0
    encoding = 'latin-1'

    def __init__(
        self, sock: Optional[socket.socket] = None, map: Optional[asyncore._MapType] = None
    ) -> None:
        self.ac_in_buffer = b''  # received, not yet matched to a terminator
        self.incoming: List[bytes] = []  # pieces kept by _collect_incoming_data()
        # Output queue: bytes-like chunks, producers (objects with more()),
        # and None as the close_when_done() marker.
        self.producer_fifo: Deque[_Entry] = deque()
        asyncore.dispatcher.__init__(self, sock, map)

    def discard_buffers(self) -> None:
        """Throw away all pending input and output (emergencies only)."""
        self.ac_in_buffer = b''
        del self.incoming[:]
        self.producer_fifo.clear()

    # -- hooks for subclasses ------------------------------------------------

    def collect_incoming_data(self, data: bytes) -> None:
        raise NotImplementedError("must be implemented in subclass")

    def found_terminator(self) -> None:
        raise NotImplementedError("must be implemented in subclass")

    # Ready-made collector pair a subclass can adopt: keep the pieces, then
    # hand them back joined.
    def _collect_incoming_data(self, data: bytes) -> None:
        self.incoming.append(data)

    def _get_data(self) -> bytes:
        joined = b''.join(self.incoming)
        del self.incoming[:]
        return joined

    # -- predicates consulted by the loop --------------------------------------

    # They answer as CPython's do: 1, and the queue itself, not bools.

    def readable(self) -> bool:
        """Always willing to read; input buffering is not bounded."""
        return 1  # type: ignore[return-value]

    def writable(self) -> bool:
        """Want write events while output is queued, or to finish connecting."""
        return self.producer_fifo or (not self.connected)  # type: ignore[return-value]

    # -- framing ---------------------------------------------------------------

    def get_terminator(self) -> Union[bytes, int, None]:
        return self.terminator

    def set_terminator(self, term: Union[bytes, int, None]) -> None:
        """Set the input delimiter: bytes (or str), a byte count, or None."""
        if isinstance(term, str):
            if self.use_encoding:
                term = bytes(term, self.encoding)
        elif isinstance(term, int) and term < 0:
            raise ValueError('the number of received bytes must be positive')
        self.terminator: Union[bytes, int, None] = term

    def handle_read(self) -> None:
        try:
            data = self.recv(self.ac_in_buffer_size)
        except BlockingIOError:
            return  # only a spurious wake-up: retry on the next event
        except OSError:
            self.handle_error()
            return

        if self.use_encoding and isinstance(data, str):
            # Faithful to CPython 3.11, which passes the ``str`` type rather
            # than the data here and so always raises TypeError.
            data = bytes(str, self.encoding)
        self.ac_in_buffer = self.ac_in_buffer + data
        if not self._may_coalesce():
            self._frame_input()
            return
        # What push() queues while this input is handled goes out when it
        # is, in one send() (see _may_coalesce); also when a handler fails,
        # so that what was answered before still reaches the client.
        self._holding_output = True
        try:
            self._frame_input()
        finally:
            self._holding_output = False
            if self.producer_fifo:
                self.initiate_send()

    def _frame_input(self) -> None:
        # get_terminator() is called for each record, as CPython does, when
        # a subclass has its own; ours would only return the attribute.
        asks = (
            type(self).get_terminator is not async_chat.get_terminator
            or 'get_terminator' in self.__dict__
        )
        # One recv() may hold several records, so keep framing until the
        # buffer is used up or ends in a partial terminator.
        while self.ac_in_buffer:
            buffered = self.ac_in_buffer
            terminator = self.get_terminator() if asks else self.terminator
            if not terminator:
                self._take_everything()
            elif isinstance(terminator, int):
                self._take_counted(terminator, len(buffered))
            else:
                # The common case, a delimiter in the buffer, is inlined:
                # this runs once per command line.
                found_at = buffered.find(terminator)
                if found_at == -1:
                    if not self._take_partial(terminator, len(buffered)):
                        break
                    continue
                # Empty records are not reported to the collector.
                if found_at > 0:
                    self.collect_incoming_data(buffered[:found_at])
                self.ac_in_buffer = buffered[found_at + len(terminator) :]
                # found_terminator() may switch terminators; the next turn
                # picks the new one up for whatever is left.
                self.found_terminator()

    def _take_everything(self) -> None:
        self.collect_incoming_data(self.ac_in_buffer)
        self.ac_in_buffer = b''

    def _take_counted(self, wanted: int, buffered: int) -> None:
        # A numeric terminator counts down across reads; it is left at 0
        # once reached, after which input is no longer framed.
        if buffered < wanted:
            self._take_everything()
            # CPython counts down the attribute, whatever get_terminator() said.
            self.terminator = self.terminator - buffered  # type: ignore[operator]
            return
        self.collect_incoming_data(self.ac_in_buffer[:wanted])
        self.ac_in_buffer = self.ac_in_buffer[wanted:]
        self.terminator = 0
        self.found_terminator()

    def _take_partial(self, terminator: bytes, buffered: int) -> bool:
        """Consume a buffer holding no whole delimiter; False when the rest
        must wait for more input."""
        partial = find_prefix_at_end(self.ac_in_buffer, terminator)
        if not partial:
            self._take_everything()
            return True
        # The buffer ends with what may be the start of a delimiter: pass
        # on the rest and keep that tail until more arrives.
        if partial != buffered:
            self.collect_incoming_data(self.ac_in_buffer[:-partial])
            self.ac_in_buffer = self.ac_in_buffer[-partial:]
        return False

    # -- output ----------------------------------------------------------------

    def push(self, data: bytes) -> None:
        """Queue bytes-like ``data`` and try to send some straight away."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            # CPython 3.11 raises with these two arguments, unformatted.
            raise TypeError('data argument must be byte-ish (%r)', type(data))
        limit = self.ac_out_buffer_size
        if len(data) <= limit:
            self.producer_fifo.append(data)
        else:
            for start in range(0, len(data), limit):
                self.producer_fifo.append(data[start : start + limit])
        if not self._holding_output:
            self.initiate_send()

    def push_with_producer(self, producer: simple_producer) -> None:
        """Queue an object whose more() returns data, b'' when exhausted."""
        if self._holding_output:
            # A producer may act once it is reached (STARTTLS starts its
            # handshake so), and must be reached when CPython reaches it:
            # after the replies before it have gone out.
            self.initiate_send()
        self.producer_fifo.append(producer)
        self.initiate_send()

    # -- sending several replies at once ----------------------------------------

    # True while handle_read() handles its input and holds replies back.
    _holding_output = False

    def _may_coalesce(self) -> bool:
        """Whether queued replies may share a send().

        With TCP_NODELAY (smtpd_compat's channels set it) every send() is a
        packet of its own; a client that pipelines 5,000 commands should not
        get 5,000 of them.  Only over a real socket, and when send() and
        initiate_send() are ours: a stand-in socket (CPython's tests read
        each send() from one) or an overriding subclass sees one send() per
        push(), as with CPython.
        """
        cls = type(self)
        return (
            isinstance(self.socket, _REAL_SOCKET)
            and cls.send is asyncore.dispatcher.send
            and cls.initiate_send is async_chat.initiate_send
            and 'send' not in self.__dict__
        )

    def _join_head(self) -> None:
        """Make the bytes waiting at the head of the queue (up to
        ac_out_buffer_size) one entry, for one send()."""
        fifo = self.producer_fifo
        limit = self.ac_out_buffer_size
        count = size = 0
        for entry in fifo:
            if type(entry) is not bytes or not entry or size + len(entry) > limit:
                break
            count += 1
            size += len(entry)
        if count > 1:
            # Those ``count`` entries are the bytes just looked at.
            fifo.appendleft(b''.join([fifo.popleft() for _ in range(count)]))  # type: ignore[misc]

    def close_when_done(self) -> None:
        """Close the channel once everything queued so far has been sent."""
        self.producer_fifo.append(None)
        self._recheck_interest()

    def _has_queued_output(self) -> bool:
        return bool(self.producer_fifo)

    def initiate_send(self) -> None:
        """Make at most one send() attempt from the head of the queue.

        Producers met on the way are drained into the queue first.
        """
        fifo = self.producer_fifo
        head = fifo[0] if len(fifo) == 1 else None
        limit = self.ac_out_buffer_size
        if type(head) is bytes and head and len(head) <= limit and self.connected:
            # The usual case, one reply queued: what _send_from_queue()
            # would do, without its generality.
            self._send_from_head(head, head, limit)
        else:
            self._send_from_queue()
        if self.producer_fifo:
            self._recheck_interest()  # the loop must wait to send the rest
        elif self._flushing_before_close:
            self._output_drained()

    def _send_from_queue(self) -> None:
        if len(self.producer_fifo) > 1 and self._may_coalesce():
            self._join_head()
        while self.producer_fifo and self.connected:
            head = self.producer_fifo[0]
            if not head:
                del self.producer_fifo[0]
                if head is None:
                    self.handle_close()
                    return
                # An empty entry still goes on to the send below, as in
                # CPython: the socket is offered b''.
            limit = self.ac_out_buffer_size
            # As CPython, tell output from a producer by slicing it.
            try:
                chunk = head[:limit]  # type: ignore[index]
            except TypeError:
                # Not sliceable, so it is a producer.
                self._pull_from_producer(head)  # type: ignore[arg-type]
                continue
            self._send_from_head(head, chunk, limit)  # type: ignore[arg-type]
            return

    def _pull_from_producer(self, producer: _Producer) -> None:
        # Put the producer's next piece in front of it; drop it from the
        # queue once it has nothing more to give.
        piece = producer.more()
        if piece:
            self.producer_fifo.appendleft(piece)
        else:
            del self.producer_fifo[0]

    def _send_from_head(self, head: _Buffer, chunk: _Buffer, limit: int) -> None:
        if isinstance(chunk, str) and self.use_encoding:
            chunk = bytes(chunk, self.encoding)
        try:
            sent = self.send(chunk)
        except OSError:
            self.handle_error()
            return
        if not sent:
            return
        if sent < len(chunk) or limit < len(head):
            self.producer_fifo[0] = head[sent:]  # keep the unsent rest
        else:
            del self.producer_fifo[0]

    def handle_write(self) -> None:
        self.initiate_send()

    def handle_close(self) -> None:
        self.close()


asyncore._KNOWN_READABLE.add(async_chat.readable)
asyncore._KNOWN_WRITABLE.add(async_chat.writable)


class simple_producer:
    """Serve ``data`` through more() in pieces of ``buffer_size`` bytes."""

    def __init__(self, data: bytes, buffer_size: int = 512) -> None:
        self.buffer_size = buffer_size
        self.data = data

    def more(self) -> bytes:
        size = self.buffer_size
        if len(self.data) > size:
            piece, self.data = self.data[:size], self.data[size:]
        else:
            piece, self.data = self.data, b''
        return piece


def find_prefix_at_end(haystack: AnyStr, needle: AnyStr) -> int:
    """Return how long a proper prefix of ``needle`` ends ``haystack``.

    For example ("qwerty\r", "\r\n") gives 1 and ("qwertydkjf", "\r\n")
    gives 0.  The caller has already ruled out a whole ``needle`` match.
    """
    size = len(needle) - 1
    while size and not haystack.endswith(needle[:size]):
        size -= 1
    return size
