"""5,000 sessions at once, served by one process: the loop keeps working with
descriptors far past select()'s FD_SETSIZE (1024)."""

import errno
import resource
import selectors
import socket
import time

import pytest

from extension_support import FQDN, WAIT_SECONDS, greeting, send_message
from smtpd_compat.controller import Controller
from smtpd_compat.pytest_plugin import RecordingServer

SESSIONS = 5000
# Client and server ends both live in this process, plus some to spare.
DESCRIPTORS_NEEDED = 2 * SESSIONS + 200
# Keep fewer connections waiting to be accepted than any listen backlog
# (CPython's was 5), or the kernel drops SYNs and we wait on retries.
CONNECTING_AT_ONCE = 4
EHLO_REPLY_END = b"250 HELP\r\n"


@pytest.fixture
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= DESCRIPTORS_NEEDED:
        yield
        return
    wanted_hard = (
        hard
        if hard == resource.RLIM_INFINITY or hard >= DESCRIPTORS_NEEDED
        else DESCRIPTORS_NEEDED
    )
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS_NEEDED, wanted_hard))
    except (ValueError, OSError) as error:
        pytest.skip("cannot raise RLIMIT_NOFILE to %d: %s" % (DESCRIPTORS_NEEDED, error))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Session:
    def __init__(self, port):
        self.sock = socket.socket()
        self.sock.setblocking(False)
        status = self.sock.connect_ex(("127.0.0.1", port))
        assert status in (0, errno.EINPROGRESS), status
        self.received = b""
        self.stage = "greeting"


def test_5000_concurrent_sessions_are_greeted_and_answer_ehlo(many_descriptors):
    with Controller(RecordingServer) as controller:
        sessions = []
        done = 0
        waiting_for_greeting = 0
        deadline = time.monotonic() + 100
        with selectors.DefaultSelector() as selector:
            try:
                while done < SESSIONS:
                    assert time.monotonic() < deadline, "%d of %d sessions done" % (done, SESSIONS)
                    while len(sessions) < SESSIONS and waiting_for_greeting < CONNECTING_AT_ONCE:
                        session = Session(controller.port)
                        sessions.append(session)
                        selector.register(session.sock, selectors.EVENT_READ, session)
                        waiting_for_greeting += 1
                    for key, _ in selector.select(WAIT_SECONDS):
                        session = key.data
                        chunk = session.sock.recv(65536)
                        assert chunk, "session %d closed at stage %s" % (
                            sessions.index(session),
                            session.stage,
                        )
                        session.received += chunk
                        if session.stage == "greeting" and session.received.endswith(b"\r\n"):
                            assert session.received == greeting()
                            session.received, session.stage = b"", "ehlo"
                            waiting_for_greeting -= 1
                            session.sock.send(b"EHLO me\r\n")
                        elif session.stage == "ehlo" and session.received.endswith(EHLO_REPLY_END):
                            assert session.received.startswith(b"250-" + FQDN.encode() + b"\r\n")
                            session.stage = "done"
                            selector.unregister(session.sock)
                            done += 1
                # All 5,000 are still open at once, and the server still
                # serves a new session.
                assert max(session.sock.fileno() for session in sessions) > 2 * 1024
                assert (
                    send_message(controller.port, "a@example.org", ["b@example.org"], "after")
                    == {}
                )
                assert [message.data for message in controller.server.messages] == [b"after"]
                for session in sessions:
                    session.sock.send(b"NOOP\r\n")
                    session.sock.setblocking(True)
                    session.sock.settimeout(WAIT_SECONDS)
                    assert session.sock.recv(100) == b"250 OK\r\n"
            finally:
                for session in sessions:
                    session.sock.close()
