"""The fast paths of the SMTP channel give exactly what the general code gives.

Pure functions, called directly: the plain-address reader against the email
package's parser, and the message un-stuffing (whole text, and piece by piece as
a message arrives) against the line-by-line definition of RFC 5321 4.5.2.
"""

import errno
import os
import random
import socket
import time
from email._header_value_parser import get_angle_addr

import pytest

import smtpd_compat as smtpd

SEED = 5321


def parser_reading(arg):
    token, rest = get_angle_addr(arg)
    return token.addr_spec, rest


ADDRESSES = [
    "<foo@vm>",
    "<foo@vm> SIZE=100",
    "<a.b+c@example.org> BODY=8BITMIME SMTPUTF8",
    "<x@y>\tSIZE=1",
    "<x@y>SIZE=1",
    "<x@y>  ",
    "<x@y>>",
    "<!#$%&'*+/=?^_`{|}~-@a-b.c>",
]


@pytest.mark.parametrize("arg", ADDRESSES)
def test_plain_address_is_read_as_the_email_parser_reads_it(arg):
    assert smtpd._plain_address(arg) == parser_reading(arg)


@pytest.mark.parametrize(
    "arg",
    ["<.a@b>", "<a..b@c>", "<a@b.>", "<@r:a@b>", '<"q"@b>', "<a@[1.2.3.4]>", "<a@b>(c)", "<>"],
)
def test_anything_but_a_plain_address_is_left_to_the_email_parser(arg):
    assert smtpd._plain_address(arg) is None


def test_random_angle_addresses_read_the_same_either_way():
    rnd = random.Random(SEED)
    pieces = ["a", "B", "7", ".", "@", "+", "-", "<", ">", " ", "(", ")", '"', "x.y", "é"]
    for _ in range(5000):
        arg = "<" + "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 12)))
        fast = smtpd._plain_address(arg)
        if fast is not None:
            assert fast == parser_reading(arg), arg


def lines_definition(text, linesep, dot, newline):
    """RFC 5321 4.5.2 as CPython's smtpd wrote it: line by line."""
    return newline.join(
        line[1:] if line and line[:1] == dot else line for line in text.split(linesep)
    )


def random_bodies(count):
    rnd = random.Random(SEED)
    alphabet = [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"..", b"\r\n.\r"]
    for _ in range(count):
        yield b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 16)))


def test_undo_transparency_on_bytes_matches_the_line_by_line_definition():
    for body in random_bodies(20000):
        assert smtpd._undo_transparency(body, b"\r\n", ord("."), b"\n") == lines_definition(
            body, b"\r\n", b".", b"\n"
        )


@pytest.mark.parametrize("newline", ["\n", "\r\n", "<NL>"])
def test_undo_transparency_on_text_matches_the_line_by_line_definition(newline):
    for body in random_bodies(5000):
        text = body.decode("ascii")
        assert smtpd._undo_transparency(text, "\r\n", ".", newline) == lines_definition(
            text, "\r\n", ".", newline
        )


def test_message_buffer_fed_in_pieces_matches_the_line_by_line_definition():
    # As asynchat delivers it: after the CRLF that _start_data puts in front,
    # cut anywhere after that CRLF.
    rnd = random.Random(SEED)
    for body in random_bodies(20000):
        data = b"\r\n" + body
        cuts = sorted(rnd.sample(range(2, len(data) + 1), min(len(data) - 1, rnd.randrange(4))))
        buffer = smtpd._MessageBuffer()
        start = 0
        for end in [*cuts, len(data)]:
            buffer.write(data[start:end])
            start = end
        assert buffer.getvalue() == lines_definition(body, b"\r\n", b".", b"\n"), data


class RecordingChat:
    """An async_chat on one end of a socket pair that keeps what it frames."""

    def __init__(self, chat_class):
        import socket

        from smtpd_compat import asynchat

        self.map = {}
        ours, self.peer = socket.socketpair()
        self.records = []
        records = self.records

        class Chat(chat_class):
            def collect_incoming_data(self, data):
                self.part = getattr(self, "part", b"") + data

            def found_terminator(self):
                records.append(getattr(self, "part", b""))
                self.part = b""

        self.chat = Chat(ours, map=self.map)
        self.asynchat = asynchat

    def feed(self, data):
        self.peer.sendall(data)
        self.chat.handle_read()

    def close(self):
        self.chat.close()
        self.peer.close()


def test_a_subclass_get_terminator_is_asked_for_every_record():
    from smtpd_compat import asynchat

    asked = []

    class Alternating(asynchat.async_chat):
        # Each record ends with a different delimiter; the attribute is
        # never set, so only get_terminator() can tell.
        def get_terminator(self):
            asked.append(len(asked))
            return b";" if len(asked) % 2 else b"|"

    chat = RecordingChat(Alternating)
    try:
        chat.feed(b"a;b|c;d|")
        assert chat.records == [b"a", b"b", b"c", b"d"]
        assert len(asked) == 4  # one per record, as CPython asks
    finally:
        chat.close()


def test_a_get_terminator_set_on_the_instance_is_asked_too():
    from smtpd_compat import asynchat

    chat = RecordingChat(asynchat.async_chat)
    try:
        chat.chat.get_terminator = lambda: b"#"
        chat.feed(b"one#two#")
        assert chat.records == [b"one", b"two"]
    finally:
        chat.close()


# The reply to a command is held while handle_read() handles its input and
# sent when it is done (one send() per read).  A send() that takes part,
# would block, or fails must leave nothing lost and nothing sent twice.


class ScriptedSocket(socket.socket):
    """A real socket whose send() answers from a script first:
    an int (send that many bytes) or an exception to raise."""

    script = ()

    def send(self, data, *flags):
        if self.script:
            step, self.script = self.script[0], self.script[1:]
            if isinstance(step, BaseException):
                raise step
            return super().send(data[:step], *flags)
        return super().send(data, *flags)


def echo_channel(script):
    """(channel, its map, the client's socket): the channel answers each
    line with b"ok " + line, over a ScriptedSocket."""
    from smtpd_compat import asynchat

    client, server = socket.socketpair()
    ours = ScriptedSocket(server.family, server.type, server.proto, fileno=os.dup(server.fileno()))
    server.close()
    ours.script = tuple(script)

    class Echo(asynchat.async_chat):
        closed_by_peer = False
        errors = 0

        def __init__(self, sock, map):
            asynchat.async_chat.__init__(self, sock, map=map)
            self.set_terminator(b"\r\n")
            self.line = b""

        def collect_incoming_data(self, data):
            self.line += data

        def found_terminator(self):
            self.push(b"ok " + self.line + b"\r\n")
            self.line = b""

        def handle_close(self):
            self.closed_by_peer = True
            self.close()

        def handle_error(self):
            self.errors += 1
            self.close()

    channels = {}
    return Echo(ours, channels), channels, client


def read_reply(client, channels, expected):
    from smtpd_compat import asyncore

    client.settimeout(0)
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < len(expected) and time.monotonic() < deadline:
        asyncore.loop(timeout=0.01, map=channels, count=1)
        try:
            got += client.recv(4096)
        except BlockingIOError:
            pass
    return got


@pytest.mark.parametrize(
    "script",
    [[3], [BlockingIOError(errno.EWOULDBLOCK, "would block")], [1, 1, 1], []],
    ids=["part", "would-block", "byte-by-byte", "whole"],
)
def test_a_reply_send_takes_in_part_goes_out_whole_and_once(script):
    channel, channels, client = echo_channel(script)
    try:
        client.sendall(b"hello\r\n")
        channel.handle_read()
        assert read_reply(client, channels, b"ok hello\r\n") == b"ok hello\r\n"
        assert not channel.producer_fifo
        client.sendall(b"again\r\n")  # and the channel goes on as before
        assert read_reply(client, channels, b"ok again\r\n") == b"ok again\r\n"
    finally:
        channel.close()
        client.close()


def test_a_reply_send_to_a_vanished_peer_closes_the_channel():
    channel, channels, client = echo_channel([ConnectionResetError(errno.ECONNRESET, "reset")])
    try:
        client.sendall(b"hello\r\n")
        channel.handle_read()
        assert (channel.closed_by_peer, channel.errors, channels) == (True, 0, {})
    finally:
        client.close()


def test_a_reply_send_failing_otherwise_is_the_channel_s_error():
    channel, channels, client = echo_channel([OSError(errno.EINVAL, "invalid")])
    try:
        client.sendall(b"hello\r\n")
        channel.handle_read()
        assert (channel.closed_by_peer, channel.errors, channels) == (False, 1, {})
    finally:
        client.close()
