"""Differential testing of smtpd_compat against CPython's own smtpd.

The same client sessions are played, over real loopback sockets, against two server
processes (``tests/differential_server.py``): the *reference*, CPython's ``smtpd``
under a CPython <= 3.11, and the *candidate*, ``smtpd_compat`` under the running
interpreter. For each session the reply bytes and the ``process_message`` calls
(peer and fqdn normalised) must be the same.

This module holds the pieces, each usable on its own:

- locating interpreters (``reference_python``, ``sides``);
- ``ServerProcess``: one server subprocess and the JSON records it prints;
- ``play``: one session over one connection, synchronised by half-close and EOF
  (and, for lockstep sessions, by the server's records of what it has read);
- ``reference_outcome``: the reference's outcome made deterministic;
- ``generate_sessions``: sessions from a seeded grammar;
- ``transcript``: a session's lines paired with the reference's replies, following
  CPython's framing (used by the divergence predicates);
- ``DIVERGENCES``: the named, known differences, each with a predicate and either a
  specific check (fixed in smtpd_compat) or exclusion (not fixed yet);
- ``SHARED_LIMIT_SCENARIOS``/``play_scenario``: scripted two-connection scenarios;
- ``run_differential``: all of it, returning a ``Report``.

Environment:

``SMTPD_COMPAT_REFERENCE_PYTHON``
    the interpreter for the reference (default: this one if <= 3.11, else pyenv's
    newest 3.11/3.10/3.9/3.8).
``SMTPD_COMPAT_DIFF_CANDIDATE``
    ``compat`` (default) or ``cpython``: run CPython's smtpd on both sides, which
    checks the harness and the reference's determinism (must give 0 mismatches).
``SMTPD_COMPAT_DIFF_SESSIONS``, ``SMTPD_COMPAT_DIFF_SEED``
    how many sessions, and the seed (see tests/test_differential.py).
``SMTPD_COMPAT_DIFF_ONLY``
    comma-separated session numbers: play only those (for reproducing one).
``SMTPD_COMPAT_DIFF_STRICT``
    1: compare the sessions of 'pending' divergences as well (see ``Divergence``).
``SMTPD_COMPAT_DIFF_SHOW``, ``SMTPD_COMPAT_DIFF_SHOW_EXCLUDED``
    how many mismatches (default 10), and how many excluded sessions whose
    outcomes differed (default 0), the summary spells out.

``python tests/differential.py [SESSIONS [SEED]]`` runs the same as the test
without pytest (for interpreters that have no pytest installed).
"""

import collections
import glob
import json
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SERVER_SCRIPT = os.path.join(HERE, "differential_server.py")

SESSION_SECONDS = 10.0  # a session that has not ended by then is a failure
START_SECONDS = 30.0  # a server that has not printed its port by then is a failure
MAX_RESTARTS = 10  # per server process, over a whole run
DEFAULT_SEED = 20240611
DEFAULT_SESSIONS = 900


# ===========================================================================
# Interpreters


def _version_key(path):
    match = re.search(r"/versions/(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def _pyenv_root():
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            done = subprocess.run(
                [pyenv, "root"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                timeout=30,
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    for candidate in (os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv")):
        if candidate and os.path.isdir(candidate):
            return candidate
    return None


def reference_python():
    """A CPython <= 3.11 interpreter for the reference, or None.

    ``SMTPD_COMPAT_REFERENCE_PYTHON`` names one; else this interpreter if it still
    has smtpd; else pyenv's newest 3.11, 3.10, 3.9 or 3.8.
    """
    named = os.environ.get("SMTPD_COMPAT_REFERENCE_PYTHON")
    if named:
        return named
    if sys.version_info < (3, 12) and sys.implementation.name == "cpython":
        return sys.executable
    root = _pyenv_root()
    if root:
        for minor in ("3.11", "3.10", "3.9", "3.8"):
            pattern = os.path.join(root, "versions", minor + ".*", "bin", "python" + minor)
            found = [path for path in glob.glob(pattern) if os.access(path, os.X_OK)]
            if found:
                return max(found, key=_version_key)
    return None


def strict_mode():
    """SMTPD_COMPAT_DIFF_STRICT=1: compare the sessions of 'pending' divergences
    too (for checking that smtpd_compat still behaves like CPython there)."""
    return os.environ.get("SMTPD_COMPAT_DIFF_STRICT", "") not in ("", "0")


def candidate_is_cpython():
    """True when the internal switch asks for CPython on both sides."""
    value = os.environ.get("SMTPD_COMPAT_DIFF_CANDIDATE", "compat").strip().lower()
    if value not in ("compat", "cpython"):
        raise ValueError(
            "SMTPD_COMPAT_DIFF_CANDIDATE must be 'compat' or 'cpython', not %r" % value
        )
    return value == "cpython"


# ===========================================================================
# Server options


class Options(collections.namedtuple("Options", "size decode_data smtputf8")):
    """One server configuration. ``size``: 'default', 'none' or an int."""

    def argv(self):
        args = []
        if self.size != "default":
            args += ["--data-size-limit", str(self.size)]
        if self.decode_data:
            args.append("--decode-data")
        if self.smtputf8:
            args.append("--smtputf8")
        return args

    @property
    def limit(self):
        """The data_size_limit the channel will have (None: no limit)."""
        if self.size == "default":
            return 33554432
        if self.size == "none":
            return None
        return int(self.size)

    def __str__(self):
        parts = [
            "data_size_limit=%s" % {"default": "default", "none": "None"}.get(self.size, self.size)
        ]
        if self.decode_data:
            parts.append("decode_data=True")
        if self.smtputf8:
            parts.append("enable_SMTPUTF8=True")
        return ", ".join(parts)


# decode_data and enable_SMTPUTF8 cannot both be true.
OPTION_SETS = [
    Options(size, decode, utf8)
    for size in ("default", "none", 100)
    for decode, utf8 in ((False, False), (True, False), (False, True))
]


# ===========================================================================
# A server process and its records


class ServerUnavailable(Exception):
    pass


class ServerProcess:
    """``differential_server.py`` in a subprocess; reads its port and JSON records.

    ``records[port]`` holds the events of the connection whose client port is
    ``port`` (a new connection from the same port starts a fresh list).
    """

    def __init__(self, name, python, impl, options, pythonpath=REPO):
        self.name = name
        self.pythonpath = pythonpath  # where smtpd_compat is imported from
        self.argv = [python, "-W", "ignore::DeprecationWarning", SERVER_SCRIPT, "--impl", impl]
        self.argv += options.argv()
        self.options = options
        self.process = None
        self.port = None
        self.restarts = -1
        self.records = {}
        self._pending = b""
        self._stderr = None

    # -- life cycle ---------------------------------------------------------

    def launch(self):
        """Start the process (without waiting for its port)."""
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise ServerUnavailable("%s: restarted %d times already" % (self.name, MAX_RESTARTS))
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.pythonpath, env.get("PYTHONPATH")]))
        if self._stderr is None:
            self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=REPO,
        )
        self.port = None
        self._pending = b""
        self.records = {}

    def wait_ready(self):
        """Read the port from the first line of stdout."""
        deadline = time.monotonic() + START_SECONDS
        while b"\n" not in self._pending:
            if not self._read_some(deadline):
                raise ServerUnavailable("%s did not start:\n%s" % (self.name, self.stderr_tail()))
        first, self._pending = self._pending.split(b"\n", 1)
        self.port = int(first)
        self._parse()

    def ensure_running(self):
        if self.process is None or self.process.poll() is not None or self.port is None:
            self.stop()
            self.launch()
            self.wait_ready()

    def stop(self):
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process = None

    def close(self):
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, limit=4000):
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.seek(0, os.SEEK_END)
        return text[-limit:]

    # -- records ------------------------------------------------------------

    def _read_some(self, deadline):
        """Read what stdout has, waiting until ``deadline``; False at EOF or timeout."""
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return False
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return False
        self._pending += chunk
        return True

    def _parse(self):
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            if not line.strip():
                continue
            record = json.loads(line.decode("utf-8"))
            port = record.get("port")
            if record.get("event") == "connect":
                self.records[port] = [record]
            else:
                self.records.setdefault(port, []).append(record)

    def wait_for_connect(self, port, deadline):
        """Block until the server has accepted (and greeted) client port ``port``."""
        while not self._has_connect(port):
            if not self._read_some(deadline):
                return False
            self._parse()
        return True

    def _has_connect(self, port):
        events = self.records.get(port)
        return bool(events) and events[0].get("event") == "connect"

    def sync(self, deadline):
        """Make sure every record of the connections closed so far has been read.

        The server handles one event at a time, so once it has accepted a fresh
        connection it has finished with all earlier ones.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=SESSION_SECONDS) as probe:
            port = probe.getsockname()[1]
            ok = self.wait_for_connect(port, deadline)
        self.records.pop(port, None)
        return ok

    def take(self, port):
        return self.records.pop(port, [])

    def wait_until_read(self, port, total, deadline):
        """Block until the server has read ``total`` bytes from client ``port``
        (by its 'read' records), or has closed that connection."""
        while True:
            events = self.records.get(port, [])
            if any(e.get("event") == "closed" for e in events):
                return
            if sum(e.get("bytes", 0) for e in events if e.get("event") == "read") >= total:
                return
            if not self._read_some(deadline):
                return
            self._parse()


# ===========================================================================
# Playing one session


class Outcome:
    """What one server did with one session."""

    def __init__(self, replies=b"", records=(), end="eof", write_error=None, note=""):
        self.replies = replies
        self.records = list(records)
        self.end = end  # 'eof', 'reset', 'timeout' or 'unavailable'
        self.write_error = write_error
        self.note = note
        self.first_try = None  # see reference_outcome

    @property
    def fqdn(self):
        for record in self.records:
            if record.get("event") == "connect":
                return record.get("fqdn")
        return None

    @property
    def errors(self):
        return [r["exception"] for r in self.records if r.get("event") == "error"]

    @property
    def messages(self):
        return [r for r in self.records if r.get("event") == "message"]

    @property
    def dropped(self):
        """The server dropped the connection after an uncaught exception."""
        return bool(self.errors)

    def reply_lines(self):
        return split_lines(normalise_replies(self.replies, self.fqdn))

    def comparable(self):
        """The parts that must be equal: replies, messages, errors, and whether
        the session ended at all (EOF and reset both count as ended: which one a
        dropped connection gives depends on timing)."""
        port = None
        for record in self.records:
            if record.get("event") == "connect":
                port = record.get("port")
        events = []
        for record in self.records:
            if record.get("event") in ("connect", "read", "closed"):
                continue
            record = dict(record)
            record.pop("port", None)
            if record.get("event") == "message":
                expected_peer = {"tuple": [{"str": "127.0.0.1"}, {"int": port}]}
                if record.get("peer") == expected_peer:
                    record["peer"] = "<the client's address>"
            events.append(json.dumps(record, sort_keys=True))
        ended = self.end if self.end in ("timeout", "unavailable") else "ended"
        return (normalise_replies(self.replies, self.fqdn), tuple(events), ended)

    def describe(self):
        lines = ["replies: %s" % bytes_literal(normalise_replies(self.replies, self.fqdn))]
        for message in self.messages:
            shown = {k: v for k, v in sorted(message.items()) if k not in ("event", "port")}
            lines.append("process_message: %s" % json.dumps(shown, sort_keys=True))
        for error in self.errors:
            lines.append("dropped the connection after an uncaught %s" % error)
        lines.append("end: %s%s" % (self.end, " (%s)" % self.note if self.note else ""))
        if self.write_error:
            lines.append("(a write failed: %s)" % self.write_error)
        return "\n".join(lines)


def normalise_replies(replies, fqdn):
    """Replace the server's fqdn where smtpd puts it: the 220 greeting and the
    first line of the HELO/EHLO reply."""
    if not fqdn:
        return replies
    name = fqdn.encode("ascii", "replace")
    out = []
    for line in replies.split(b"\r\n"):
        if line.startswith(b"220 " + name + b" "):
            line = b"220 <fqdn> " + line[len(name) + 5 :]
        elif line in (b"250 " + name, b"250-" + name):
            line = line[:4] + b"<fqdn>"
        out.append(line)
    return b"\r\n".join(out)


def split_lines(replies):
    lines = replies.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _connect(port, small_window):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if small_window:
            # A small receive buffer (set before connecting, so the window stays
            # small) makes the server's output back up while we are not reading.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(SESSION_SECONDS)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def play(server, session):
    """Play ``session`` against ``server``; return an Outcome. Never raises for
    anything the server does: a dead server or a reset is an outcome."""
    deadline = time.monotonic() + SESSION_SECONDS
    try:
        server.ensure_running()
    except ServerUnavailable as failure:
        return Outcome(end="unavailable", note=str(failure)[:200])
    try:
        sock = _connect(server.port, session.read_late)
    except OSError as failure:
        # The listening socket is gone: start afresh once, then give up.
        try:
            server.stop()
            server.ensure_running()
            sock = _connect(server.port, session.read_late)
        except (OSError, ServerUnavailable) as again:
            return Outcome(end="unavailable", note="%s; %s" % (failure, again))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = sock.getsockname()[1]
        if not server.wait_for_connect(port, deadline):
            return Outcome(
                end="unavailable",
                note="the server never accepted the connection",
                records=server.take(port),
            )
        synchronise = None
        if session.lockstep:

            def synchronise(total):
                server.wait_until_read(port, total, deadline)

        replies, end, write_error = _exchange(
            sock, session.chunks, deadline, session.read_late, synchronise
        )
    finally:
        sock.close()
    note = ""
    try:
        if not server.sync(deadline + SESSION_SECONDS):
            note = "records may be incomplete: the server did not accept a probe connection"
    except OSError as failure:
        note = "records may be incomplete: %s" % failure
    return Outcome(replies, server.take(port), end, write_error, note)


def reference_outcome(server, session):
    """The reference's outcome for ``session``, made deterministic.

    When CPython closes a connection (after QUIT, or dropping it on an uncaught
    exception) while some of the client's writes are still unread, the kernel
    answers with a reset, and a reset makes the client's kernel discard replies
    that had arrived but were not read yet: how many replies the client sees is
    then a matter of timing. So a session that ended in a reset, that the
    reference dropped, or that has a QUIT, is played to it again as a single
    write: CPython reads it all at once, nothing is left unread when it closes,
    no reset. How the bytes
    were split does not change CPython's replies, except in the divergences
    marked ``unstable``; and the candidate is then judged on the same replay.
    """
    first = play(server, session)
    if len(session.chunks) <= 1:
        return first
    if first.dropped:
        why = "was dropped"
    elif first.end == "reset" or first.write_error:
        why = "was reset"
    elif _written_after_quit(session):
        # The reset may also go unnoticed: once the server's FIN has arrived, a
        # later reset discards unread replies yet recv() still reports EOF.
        why = "may have closed after QUIT"
    else:
        return first
    replay = play(server, session.as_one_write())
    replay.first_try = first
    replay.note = "replies from a replay as one write (the first try %s)" % why
    return replay


QUIT_LINE = re.compile(rb"(?im)^quit")


def _written_after_quit(session):
    """Some write starts after the beginning of the first line that may be a QUIT."""
    found = QUIT_LINE.search(session.data)
    return found is not None and any(cut > found.start() for cut in session.boundaries())


def _exchange(sock, chunks, deadline, read_late=False, synchronise=None):
    """Send each chunk with its own send() calls while reading (or, if
    ``read_late``, without reading); after the last, half-close and read until
    EOF. ``synchronise(total)``, if given, is called after each chunk but the
    last, with the number of bytes sent so far. Returns (replies, end,
    write_error)."""
    sock.setblocking(False)
    queue = collections.deque(chunks)
    current = b""
    received = []
    write_error = None
    writing = True
    sent_total = 0
    end = "timeout"
    with selectors.DefaultSelector() as selector:
        selector.register(
            sock,
            selectors.EVENT_WRITE if read_late else selectors.EVENT_READ | selectors.EVENT_WRITE,
        )
        if not queue:
            writing = _half_close(sock, selector)
        while time.monotonic() < deadline:
            ready = selector.select(max(0.0, deadline - time.monotonic()))
            mask = 0
            for _, events in ready:
                mask |= events
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    data = None
                except ConnectionResetError:
                    end = "reset"
                    break
                if data == b"":
                    end = "eof"
                    break
                if data:
                    received.append(data)
            if writing and mask & selectors.EVENT_WRITE:
                if not current:
                    current = queue.popleft()
                try:
                    sent = sock.send(current)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as failure:  # the server has gone: keep reading
                    write_error = "%s after %d unsent chunk(s)" % (
                        type(failure).__name__,
                        len(queue) + 1,
                    )
                    writing = False
                    selector.modify(sock, selectors.EVENT_READ)
                    continue
                current = current[sent:]
                sent_total += sent
                if not current and not queue:
                    writing = _half_close(sock, selector)
                elif not current and synchronise is not None:
                    synchronise(sent_total)
    return b"".join(received), end, write_error


class Conversation:
    """Several connections to one server, driven in a fixed order.

    Each step waits for what it must (the server's record of an accepted
    connection, or a number of complete replies), so the order in which the
    server sees things is the script's, without sleeping.
    """

    def __init__(self, server):
        self.server = server
        self.socks = collections.OrderedDict()
        self.ports = {}
        self.received = {}
        self.deadline = time.monotonic() + SESSION_SECONDS

    def open(self, name):
        self.server.ensure_running()
        sock = _connect(self.server.port, False)
        port = sock.getsockname()[1]
        self.socks[name], self.ports[name], self.received[name] = sock, port, b""
        if not self.server.wait_for_connect(port, self.deadline):
            raise AssertionError(
                "%s: the server did not accept connection %s" % (self.server.name, name)
            )
        self._read_replies(name, 1)  # the greeting

    def send(self, name, data, replies=1):
        """Send ``data`` on ``name`` and wait for ``replies`` complete replies."""
        self.socks[name].sendall(data)
        self._read_replies(name, replies)

    def _read_replies(self, name, count):
        wanted = _complete_replies(self.received[name]) + count
        sock = self.socks[name]
        while _complete_replies(self.received[name]) < wanted:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    "%s: connection %s is still waiting for a reply; got %r"
                    % (self.server.name, name, self.received[name])
                )
            sock.settimeout(remaining)
            data = sock.recv(1 << 16)
            if not data:
                return
            self.received[name] += data

    def finish(self):
        """Half-close every connection, read each to EOF; returns {name: Outcome}."""
        outcomes = {}
        for name, sock in self.socks.items():
            end = "eof"
            try:
                sock.shutdown(socket.SHUT_WR)
                while True:
                    sock.settimeout(max(0.001, self.deadline - time.monotonic()))
                    data = sock.recv(1 << 16)
                    if not data:
                        break
                    self.received[name] += data
            except ConnectionResetError:
                end = "reset"
            except socket.timeout:
                end = "timeout"
            sock.close()
            outcomes[name] = end
        self.server.sync(self.deadline + SESSION_SECONDS)
        return {
            name: Outcome(self.received[name], self.server.take(self.ports[name]), end)
            for name, end in outcomes.items()
        }


def _complete_replies(received):
    return sum(1 for line in received.split(b"\r\n")[:-1] if line[3:4] != b"-")


def _half_close(sock, selector):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    selector.modify(sock, selectors.EVENT_READ)
    return False


# ===========================================================================
# Sessions


def bytes_literal(data):
    """A Python bytes literal for ``data``, split at CRLFs to stay readable."""
    if not data:
        return "b''"
    parts = re.findall(rb"[^\n]*\n|[^\n]+", data)
    return " ".join(repr(part) for part in parts)


class Session:
    """A client session: the chunks it writes (one write each), in order."""

    def __init__(self, number, options, chunks, plan, read_late=False, lockstep=False):
        self.number = number
        self.options = options
        self.chunks = [bytes(chunk) for chunk in chunks if chunk]
        self.plan = plan  # a short human description of how it was built
        self.read_late = read_late  # read nothing until all is written and half-closed
        # Wait until the server has read each write before making the next, so
        # that its reads are split exactly as the writes are.
        self.lockstep = lockstep and len(self.chunks) > 1

    @property
    def data(self):
        return b"".join(self.chunks)

    def as_one_write(self):
        return Session(
            self.number, self.options, [self.data], self.plan + ", as one write", self.read_late
        )

    def boundaries(self):
        """Offsets into ``data`` where one write ends and the next begins."""
        offsets, total = [], 0
        for chunk in self.chunks[:-1]:
            total += len(chunk)
            offsets.append(total)
        return offsets

    def reproduction(self):
        lines = [
            "# session %d (%s); server options: %s" % (self.number, self.plan, self.options),
            "# one socket write per item, then shutdown(SHUT_WR)%s%s"
            % (
                "; no reading before that" if self.read_late else "",
                "; each write only once the server has read the one before"
                if self.lockstep
                else "",
            ),
        ]
        if any(len(chunk) == 1 for chunk in self.chunks):
            lines.append("one_by_one = lambda data: [data[i:i + 1] for i in range(len(data))]")
        lines.append("chunks = [")
        index = 0
        while index < len(self.chunks):
            run = index
            while run < len(self.chunks) and len(self.chunks[run]) == 1:
                run += 1
            if run - index >= 4:
                joined = b"".join(self.chunks[index:run])
                lines.append("    *one_by_one(%s)," % bytes_literal(joined))
                index = run
                continue
            chunk = self.chunks[index]
            lines.append("    %s," % (bytes_literal(chunk) if len(chunk) < 600 else repr(chunk)))
            index += 1
        lines.append("]")
        return "\n".join(lines)


def _case(rng, word):
    roll = rng.random()
    if roll < 0.65:
        return word.upper()
    if roll < 0.8:
        return word.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)


GOOD_LOCALS = ["alice", "Bob.Smith", "x", "a+tag", "postmaster", "first_last", "0"]
DOMAINS = ["example.org", "EXAMPLE.net", "mx.example.com", "[127.0.0.1]", "localhost"]
# Addresses that make email._header_value_parser raise in CPython 3.11.
BREAKING_ADDRESSES = [
    "<",
    "<@",
    "a@",
    '"',
    '<"',
    "<a@[1.2",
    "<a@>",
    "@b",
    "<a@b.>",
    ">",
    "<,>",
    "<:a@b>",
    "<@a>",
    "(",
    "<(",
    "<@:a@b>",
    "@",
    "[",
    ":",
    "<;>",
    "<[>",
]
ODD_ADDRESSES = [
    "<a(b@c>",
    "a(comment)@example.org",
    "<a@b",
    "a..b@example.org",
    ".a@b.example",
    "<a@b\x7f>",
    "\\",
    "<a@b\t>",
    "a@b c",
    "<a@b>junk",
    "<@x:a@b>",
    "<<a@b>>",
    "<a@b>>",
    "a",
    "<a>",
    '"a b"',
    "<a@b@c>",
    "a@b.example (comment)",
]


ADDRESS_ALPHABET = 'ab.@<>:,;"\\()[] \t-_=+é'


def _fuzzed_address(rng):
    """A short random string over the characters addresses are parsed by."""
    return "".join(rng.choice(ADDRESS_ALPHABET) for _ in range(rng.randint(0, 12)))


def _address(rng):
    if rng.random() < 0.08:
        return _fuzzed_address(rng)
    roll = rng.random()
    local, domain = rng.choice(GOOD_LOCALS), rng.choice(DOMAINS)
    if roll < 0.42:
        return "<%s@%s>" % (local, domain)
    if roll < 0.52:
        return "%s@%s" % (local, domain)
    if roll < 0.59:
        return "<>"
    if roll < 0.64:
        return "<@relay.example:%s@%s>" % (local, domain)
    if roll < 0.67:
        return "<@r1.example,@r2.example:%s@%s>" % (local, domain)
    if roll < 0.71:
        return rng.choice(['"quoted local"@%s', '<"quoted local"@%s>', '<"q\\"x"@%s>']) % domain
    if roll < 0.75:
        return rng.choice(["<üser@exämple.org>", "ü@b", "<a@b.example\u00a0>", "<δ@ε.example>"])
    if roll < 0.79:
        return rng.choice(BREAKING_ADDRESSES)
    if roll < 0.95:
        return rng.choice(ODD_ADDRESSES)
    return ""


MAIL_PARAMETERS = [
    "SIZE=10",
    "SIZE=99",
    "SIZE=100",
    "SIZE=101",
    "SIZE=0",
    "SIZE=33554432",
    "SIZE=33554433",
    "SIZE=abc",
    "SIZE=",
    "SIZE",
    "size=50",
    "BODY=7BIT",
    "BODY=8BITMIME",
    "body=8bitmime",
    "BODY=BINARYMIME",
    "BODY=",
    "BODY",
    "SMTPUTF8",
    "smtputf8",
    "SMTPUTF8=YES",
    "XFOO=bar",
    "NOTIFY=NEVER",
    "=x",
    "FOO=",
    "X-Y=1",
    "RET=HDRS",
    "AUTH=<>",
]
NON_ASCII_PARAMETERS = ["SIZE=\u00b2", "SIZE=\u0663", "ÄÖ=1", "BODY=8BİTMIME"]
RCPT_PARAMETERS = [
    "NOTIFY=NEVER",
    "ORCPT=rfc822;a@b",
    "XFOO",
    "SIZE=1",
    "=x",
    "FOO=",
    "BODY=7BIT",
]


def _mail_or_rcpt(rng, verb, keyword, parameters):
    address = _address(rng)
    roll = rng.random()
    if roll < 0.7:
        arg = "%s%s" % (_case(rng, keyword), address)
    elif roll < 0.8:
        arg = "%s %s" % (_case(rng, keyword), address)
    elif roll < 0.85:
        arg = "%s%s" % (_case(rng, keyword.rstrip(":") + " "), address)  # no colon
    elif roll < 0.88:
        arg = "%s%s" % (_case(rng, "TO:" if keyword == "FROM:" else "FROM:"), address)
    elif roll < 0.91:
        arg = _case(rng, keyword)
    elif roll < 0.94:
        arg = address
    else:
        arg = None
    if arg is not None and rng.random() < 0.4:
        count = rng.choice([1, 1, 1, 2, 3])
        pool = parameters if rng.random() < 0.93 else NON_ASCII_PARAMETERS
        arg += "".join(rng.choice([" ", " ", "  ", "\t"]) + rng.choice(pool) for _ in range(count))
    spacing = rng.choice([" "] * 8 + ["  ", "\t"])
    line = _case(rng, verb) if arg is None else _case(rng, verb) + spacing + arg
    if rng.random() < 0.05:
        line += rng.choice([" ", "  ", "\t"])
    return line


def _long_command(rng):
    target = rng.choice(
        [
            510,
            511,
            512,
            513,
            514,
            536,
            537,
            538,
            539,
            540,
            546,
            547,
            548,
            549,
            550,
            600,
            1100,
            5000,
        ]
    )
    kind = rng.choice(["MAIL", "MAIL", "MAIL", "RCPT", "RCPT", "NOOP", "EHLO", "XJUNK", "VRFY"])
    tail = rng.choice(["", "", "", "é", "€", " SMTPUTF8", " SIZE=10"])
    if kind in ("MAIL", "RCPT"):
        head = "MAIL FROM:<" if kind == "MAIL" else "RCPT TO:<"
        fixed = len((head + "@example.org>" + tail).encode("utf-8"))
        text = head + "a" * max(1, target - fixed) + "@example.org>" + tail
    elif kind == "NOOP":
        text = "NOOP" + " " * max(0, target - 4)
    elif kind == "EHLO":
        text = "EHLO " + "h" * max(1, target - 5 - len(tail.encode("utf-8"))) + tail
    elif kind == "VRFY":
        text = "VRFY <" + "v" * max(1, target - 18) + "@example.org>"
    else:
        text = "X" * target
    return text.encode("utf-8")


OTHER_COMMANDS = [
    "RSET",
    "RSET x",
    "NOOP",
    "NOOP x",
    "noop",
    "HELP",
    "HELP MAIL",
    "HELP rcpt",
    "HELP EHLO",
    "HELP HELO",
    "HELP DATA",
    "HELP RSET",
    "HELP NOOP",
    "HELP QUIT",
    "HELP VRFY",
    "HELP BOGUS",
    "HELP EXPN",
    "VRFY",
    "VRFY alice",
    "VRFY <a@b>",
    "VRFY <",
    "vrfy a@",
    "VRFY <@x:a@b>",
    "EXPN",
    "EXPN list",
    "FOO",
    "XYZZY arg",
    "STARTTLS",
    "AUTH PLAIN AGFAYg==",
    "BDAT 10 LAST",
    "TURN",
    " NOOP",
    "NOOP ",
    "\tNOOP",
    "DATA",
    "DATA x",
    "QUIT now",
    "HELO",
    "EHLO",
    "MAIL",
    "RCPT",
    "MAIL FROM:",
    "RCPT TO:",
    "X" * 40,
    "HELP  MAIL",
    "HELP MAIL x",
]
NON_ASCII_COMMANDS = ["VRFY é", "FÖÖ", "HELP ü", "EXPN é", "NOOP é", "RSET ü", "ﬀ"]

RAW_LINES = [
    b"",
    b" ",
    b"\t",
    b"\x00",
    b"NOOP\x00",
    b"N\rOOP",
    b"NOOP\r",
    b"NO\nOP",
    b"\rNOOP",
    b"RSET\n",
    b"\n",
    b"\r",
    b"\x7f",
    # What str.strip() and str.split() take for whitespace, beyond space and tab.
    b"NOOP \x1c",
    b"NOOP \x0b\x0c",
    b"RSET \x1f",
    b"QUIT \x1e",
    b"HELO \x1c",
    b"NOOP\x1c",
    b"MAIL FROM:<a@b.example> \x1c",
    b"MAIL FROM:<a@b.example> SIZE=10\x1dBODY=7BIT",
    "NOOP \u2003".encode(),
    "NOOP \u0085".encode(),
    "HELO \u3000".encode(),
]
NON_UTF8_LINES = [
    b"\xff",
    b"\xfe\xff NOOP",
    b"NOOP \xff",
    b"MAIL FROM:<\xe9@b>",
    b"VRFY \xc3",
    b"HELO \xed\xa0\x80",
    b"\x80abc",
    b"RCPT TO:<a@b\xff>",
    b"HELO \xc3\xa9",
]


def _greeting(rng):
    verb = _case(rng, rng.choice(["EHLO", "EHLO", "HELO"]))
    roll = rng.random()
    if roll < 0.75:
        return "%s %s" % (verb, rng.choice(["client.example", "[127.0.0.1]", "x", "localhost"]))
    if roll < 0.82:
        return verb
    if roll < 0.86:
        return verb + " "
    if roll < 0.92:
        return verb + "   spaced.example   "
    if roll < 0.95:
        return verb + " héllo.example"
    return verb + "\tclient.example"


BODY_LINES = [
    b"Subject: differential",
    b"From: a@example.org",
    b"",
    b"plain text",
    b".leading dot",
    b"..",
    b".",
    b"...",
    b" .",
    b". ",
    b"a\rb",
    b"a\nb",
    b"\r",
    b"\n",
    b"\x00",
    b"tab\there",
    b"x" * 70,
    b".\n",
    b"end\r",
    b"QUIT",
    b"RSET",
]
NON_ASCII_BODY_LINES = [
    b"caf\xc3\xa9",
    b"\xe2\x82\xac uro",
    b"\xff\xfe",
    b"\x80",
    b"\xf0\x9f\x98\x80 emoji",
]


def _body(rng, limit):
    """Body bytes (without the final CRLF.CRLF)."""
    roll = rng.random()
    if roll < 0.1:
        return b""
    lines = [
        rng.choice(BODY_LINES if rng.random() < 0.93 else NON_ASCII_BODY_LINES)
        for _ in range(rng.choice([1, 2, 3, 4, 6]))
    ]
    body = b"\r\n".join(lines)
    if limit == 100 and rng.random() < 0.6:
        # Around the 100-byte limit: the size counted is the body without CRLF.CRLF.
        target = rng.choice([95, 99, 100, 101, 102, 150, 300])
        if len(body) + 2 < target:
            body += b"\r\n" + b"y" * (target - len(body) - 2)
    return body


def _data_block(rng, limit):
    """DATA, a body and (usually) its end: a list of lines/fragments."""
    out = [_case(rng, "DATA").encode() + b"\r\n"]
    roll = rng.random()
    if roll < 0.05:
        out.append(b".\r\n")  # empty body straight after DATA
        return out
    body = _body(rng, limit)
    if roll < 0.1:
        out.append(body + rng.choice([b"\n.\n", b"\r\n.\n", b"\n.\r\n"]))  # look-alike ends
    out.append(body + b"\r\n.\r\n")
    return out


def _command(rng, options):
    roll = rng.random()
    if roll < 0.6:
        return _case(rng, rng.choice(OTHER_COMMANDS)).encode("utf-8") + b"\r\n"
    if roll < 0.62:
        return _case(rng, rng.choice(NON_ASCII_COMMANDS)).encode("utf-8") + b"\r\n"
    if roll < 0.68:
        return rng.choice(RAW_LINES) + b"\r\n"
    if roll < 0.7:
        return rng.choice(NON_UTF8_LINES) + b"\r\n"
    if roll < 0.8:
        return _greeting(rng).encode("utf-8") + b"\r\n"
    return _long_command(rng) + b"\r\n"


def _transaction(rng, options):
    parts = [_mail_or_rcpt(rng, "MAIL", "FROM:", MAIL_PARAMETERS).encode("utf-8") + b"\r\n"]
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        parts.append(_mail_or_rcpt(rng, "RCPT", "TO:", RCPT_PARAMETERS).encode("utf-8") + b"\r\n")
    if rng.random() < 0.85:
        parts.extend(_data_block(rng, options.limit))
    return parts


def _good_transaction(rng, options):
    """A transaction that a correct server accepts, to reach the DATA state often."""
    mail = "MAIL FROM:<%s@%s>" % (rng.choice(GOOD_LOCALS), rng.choice(DOMAINS))
    if rng.random() < 0.3:
        mail += " " + rng.choice(["SIZE=50", "BODY=8BITMIME", "SMTPUTF8", "BODY=7BIT"])
    parts = [mail.encode() + b"\r\n"]
    for _ in range(rng.choice([1, 1, 2])):
        parts.append(
            ("RCPT TO:<%s@%s>" % (rng.choice(GOOD_LOCALS), rng.choice(DOMAINS))).encode() + b"\r\n"
        )
    parts.extend(_data_block(rng, options.limit))
    return parts


def _pieces(rng, options):
    """The session's pieces (lines, DATA bodies) before chunking, and a plan."""
    plan = []
    pieces = []
    if rng.random() < 0.12:
        plan.append("shuffled")
        makers = [_command, _command, _transaction, _good_transaction]
        for _ in range(rng.randint(1, 12)):
            made = rng.choice(makers)(rng, options)
            pieces.extend(made if isinstance(made, list) else [made])
        rng.shuffle(pieces)
    else:
        if rng.random() < 0.88:
            pieces.append(_greeting(rng).encode("utf-8") + b"\r\n")
        for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
            for _ in range(rng.choice([0, 0, 0, 1, 2])):
                pieces.append(_command(rng, options))
            if rng.random() < 0.55:
                pieces.extend(_good_transaction(rng, options))
            else:
                pieces.extend(_transaction(rng, options))
            if rng.random() < 0.15:
                pieces.append(_case(rng, "RSET").encode() + b"\r\n")
    roll = rng.random()
    if roll < 0.42:
        plan.append("QUIT")
        pieces.append(_case(rng, "QUIT").encode() + b"\r\n")
    elif roll < 0.5:
        plan.append("commands after QUIT")
        pieces.append(b"QUIT\r\n")
        if rng.random() < 0.5:
            pieces.extend(_good_transaction(rng, options))
        else:
            pieces.append(_command(rng, options))
    elif roll < 0.58:
        plan.append("cut mid-DATA")
        pieces.extend(_good_transaction(rng, options)[:-1])
        pieces.append(
            rng.choice(
                [b"unfinished body", b"line\r\n", b"line\r\n.", b"line\r\n.\r", b"line\r", b""]
            )
        )
    elif roll < 0.63:
        plan.append("cut mid-line")
        pieces.append(rng.choice([b"NOOP", b"MAIL FROM:<a@b>", b"QUIT\r", b"RSET\n", b"\xc3"]))
    else:
        plan.append("EOF")
    return pieces, plan


def _chunk(rng, pieces, plan):
    data = b"".join(pieces)
    roll = rng.random()
    if roll < 0.3:
        plan.append("a write per line")
        return list(pieces)
    if roll < 0.48:
        plan.append("all in one write")
        return [data]
    if roll < 0.6:
        if len(data) <= 400:
            plan.append("byte by byte")
            return [data[i : i + 1] for i in range(len(data))]
        start = rng.randrange(len(data))
        stop = min(len(data), start + 300)
        plan.append("bytes %d-%d one by one" % (start, stop))
        return [data[:start]] + [data[i : i + 1] for i in range(start, stop)] + [data[stop:]]
    if roll < 0.8:
        plan.append("random splits")
        cuts = (
            sorted({rng.randrange(1, len(data)) for _ in range(rng.randint(1, 8))})
            if len(data) > 1
            else []
        )
        edges = [0] + cuts + [len(data)]
        return [data[a:b] for a, b in zip(edges, edges[1:])]
    if roll < 0.9:
        plan.append("split inside CRLFs")
        cuts = [m.start() + 1 for m in re.finditer(rb"\r\n", data)]
        cuts += [m.start() + 2 for m in re.finditer(rb"\r\n\.", data)]
        edges = [0] + sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
        return [data[a:b] for a, b in zip(edges, edges[1:])]
    plan.append("a write per transaction")
    chunks, current = [], b""
    for piece in pieces:
        current += piece
        if piece.endswith(b".\r\n") or piece.upper().startswith((b"QUIT", b"RSET")):
            chunks.append(current)
            current = b""
    return chunks + [current]


FLOOD_COMMANDS = 6000


def _flood(rng, number, options):
    """Many pipelined commands, their replies not read until the end: the
    server's output backs up while the client half-closes."""
    command = rng.choice([b"HELP\r\n", b"NOOP\r\n", b"HELP MAIL\r\n"])
    data = b"EHLO flood.example\r\n" + command * FLOOD_COMMANDS
    size = len(data) // 4
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    plan = "flood: %d x %r, replies read only after the half-close" % (FLOOD_COMMANDS, command)
    return Session(number, options, chunks, plan, read_late=True)


def generate_session(seed, number):
    rng = random.Random("%s/%d" % (seed, number))
    options = OPTION_SETS[number % len(OPTION_SETS)]
    if rng.random() < 0.006:
        return _flood(rng, number, options)
    pieces, plan = _pieces(rng, options)
    chunks = _chunk(rng, pieces, plan)
    lockstep = len(chunks) > 1 and rng.random() < 0.35
    if lockstep:
        plan.append("lockstep")
    return Session(number, options, chunks, ", ".join(plan), lockstep=lockstep)


def generate_sessions(seed, count):
    return [generate_session(seed, number) for number in range(count)]


# ===========================================================================
# CPython's framing, for the predicates


class Step(collections.namedtuple("Step", "kind text reply start stop")):
    """``kind``: 'command' (a line), 'data' (a message body), 'partial' or
    'partial-data' (bytes never terminated, in the command or the data state) or
    'after-quit' (bytes after an answered QUIT); ``reply``:
    the list of reply lines the reference gave for it, or None; ``start``/``stop``:
    where it lies in the session's bytes, its terminator included."""

    @property
    def code(self):
        if not self.reply:
            return None
        head = self.reply[-1][:3]
        return int(head) if head.isdigit() else None


def group_replies(lines):
    """Reply lines grouped into replies (``250-`` lines continue a reply)."""
    groups, current = [], []
    for line in lines:
        current.append(line)
        if line[3:4] != b"-":
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def transcript(data, reply_lines):
    """Pair ``data`` (what the client sent) with the reference's replies, framing
    it the way CPython's smtpd does: lines end at CRLF while in the command state,
    a message ends at CRLF.CRLF (searched from the byte after ``DATA``'s CRLF),
    354 enters the data state, 552 after a message leaves it there, and 221 ends
    the session. Returns (greeting, [Step, ...])."""
    replies = collections.deque(group_replies(list(reply_lines)))
    greeting = replies.popleft() if replies else None
    steps = []
    state, position = "command", 0
    while position < len(data):
        if state == "quit":
            steps.append(Step("after-quit", data[position:], None, position, len(data)))
            break
        terminator = b"\r\n" if state == "command" else b"\r\n.\r\n"
        end = data.find(terminator, position)
        if end < 0:
            kind = "partial" if state == "command" else "partial-data"
            steps.append(Step(kind, data[position:], None, position, len(data)))
            break
        text, start = data[position:end], position
        position = end + len(terminator)
        reply = replies.popleft() if replies else None
        step = Step(state if state == "command" else "data", text, reply, start, position)
        steps.append(step)
        code = step.code
        if state == "command":
            if code == 354:
                state = "data"
            elif code == 221:
                state = "quit"
        elif reply is not None and code != 552:
            state = "command"
    return greeting, steps


# ===========================================================================
# Known divergences


class Divergence:
    """A named, known difference between CPython's smtpd and smtpd_compat.

    ``applies(session, reference, steps)`` says whether a session exercises it.
    ``status``:

    - 'pending': smtpd_compat does not have the fixed behaviour yet; matching
      sessions are excluded and counted;
    - 'fixed': smtpd_compat has the fixed behaviour. ``point(session, reference,
      steps)`` gives the index of the first step whose outcome the fix may
      change (``len(steps)`` if none); from there on CPython is no oracle, so a
      session is checked at its earliest such point only (see ``judge``):
      ``check(session, reference, candidate, steps)`` returns None or a
      complaint;
    - 'timing': not a behaviour smtpd_compat changes, only CPython's outcome
      depending on timing; matching sessions are excluded (as timing-dependent)
      unless a 'pending' or 'fixed' divergence also matches.

    ``unstable``, if given, says for which matching sessions CPython's own outcome
    depends on timing; those are excluded when CPython is compared with itself
    (``SMTPD_COMPAT_DIFF_CANDIDATE=cpython``), where statuses are not used.
    """

    def __init__(
        self, name, description, applies, status="pending", check=None, unstable=None, point=None
    ):
        assert status in ("pending", "fixed", "timing")
        assert status != "timing" or unstable is not None
        assert status != "fixed" or (check is not None and point is not None), (
            "a fixed divergence needs a check and a point"
        )
        self.name = name
        self.description = description
        self.applies = applies
        self.status = status
        self._check = check
        self.unstable = unstable
        self.point = point

    def check(self, session, reference, candidate, steps):
        """None if ``candidate`` has the fixed behaviour, else a complaint."""
        point = self.point(session, reference, steps)
        return self._check(session, reference, candidate, steps, point)


def _errors_of(reference, *names):
    return any(error in names for error in reference.errors)


def _crash_step(steps):
    """The first step the reference left unanswered (where it dropped)."""
    for step in steps:
        if step.kind in ("command", "data") and step.reply is None:
            return step
    return None


def _crash_in_command(reference, steps, exceptions):
    if not reference.dropped or not _errors_of(reference, *exceptions):
        return False
    step = _crash_step(steps)
    return step is not None and step.kind == "command"


def _is_address_command(text):
    return text[:4].upper() in (b"MAIL", b"RCPT", b"VRFY")


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


COMMAND_LINE_LIMIT = 512  # before EHLO; MAIL's grows with it (at most 548)


def _over_limit(session, step):
    if step.kind in ("command", "partial"):
        return len(step.text) > COMMAND_LINE_LIMIT
    limit = session.options.limit
    return limit is not None and len(step.text) > limit


def _decode_failure(session, reference, steps):
    """What made the reference raise UnicodeDecodeError, or None if it did not:

    - 'undecodable-command': a command line that is not UTF-8 (CPython decodes
      whole lines, or with decode_data each read);
    - 'undecodable-decode-data': with decode_data, a message, or bytes that were
      never terminated, that are not UTF-8;
    - 'over-limit': UTF-8 text over its size limit: CPython decoded the part it
      kept, cut wherever the read that crossed the limit ended;
    - 'split': with decode_data, UTF-8 text within its limit that a read
      boundary cut inside a character.
    """
    if not reference.dropped or not _errors_of(reference, "UnicodeDecodeError"):
        return None
    step = _crash_step(steps)
    if step is None:
        return "undecodable-decode-data" if session.options.decode_data else None
    if not _is_utf8(step.text):
        return "undecodable-command" if step.kind == "command" else "undecodable-decode-data"
    if _over_limit(session, step):
        return "over-limit"
    return "split" if session.options.decode_data else None


def _decode_failure_is(kind):
    def applies(session, reference, steps):
        return _decode_failure(session, reference, steps) == kind

    return applies


_undecodable_command = _decode_failure_is("undecodable-command")


def _bare_size(text):
    return re.search(rb"(?i)[ \t]SIZE(?:[ \t]|$)", text) is not None


def _size_without_value(session, reference, steps):
    return _crash_in_command(reference, steps, ("AttributeError",)) and _bare_size(
        _crash_step(steps).text
    )


def _bad_address(session, reference, steps):
    parser_errors = ("HeaderParseError", "IndexError", "AttributeError", "UnboundLocalError")
    if not _crash_in_command(reference, steps, parser_errors):
        return False
    text = _crash_step(steps).text
    return _is_address_command(text) and not _size_without_value(session, reference, steps)


def _non_ascii_echo(session, reference, steps):
    return _crash_in_command(reference, steps, ("UnicodeEncodeError",))


def _mail_parameters(text):
    """The upper-cased parameters of the MAIL line ``text`` as CPython's smtpd
    splits them, or None if it is no MAIL with an address that parses."""
    from email._header_value_parser import get_addr_spec, get_angle_addr

    line = text.decode("utf-8", "replace")
    if line[:5].upper() != "MAIL ":
        return None
    arg = line[5:].strip()
    if arg[:5].upper() != "FROM:":
        return None
    arg = arg[5:].strip()
    try:
        token, rest = (get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec)(arg)
        if not token or not token.addr_spec:
            return None
    except Exception:
        return None
    return rest.upper().split()


def _size_int_cannot_read(step):
    """A MAIL line whose (last) SIZE value str.isdigit() takes but int() does not."""
    if step.kind != "command":
        return False
    values = [word[5:] for word in _mail_parameters(step.text) or () if word.startswith("SIZE=")]
    return bool(values) and values[-1].isdigit() and not values[-1].isdecimal()


def _at_unicode_size(session, reference, steps):
    """Where CPython raised (with a size limit) or accepted the value (without
    one, when it never calls int()): a reply of 250, or 555 for other parameters."""
    for index, step in enumerate(steps):
        if _size_int_cannot_read(step) and step.code in (None, 250, 555):
            return index
    return len(steps)


def _unicode_size(session, reference, steps):
    return _at_unicode_size(session, reference, steps) < len(steps)


def _utf8_split_across_writes(session, reference, steps):
    """decode_data: a write boundary falls inside a multi-byte UTF-8 sequence."""
    if not session.options.decode_data:
        return False
    data = session.data
    return any(0x80 <= data[offset] < 0xC0 for offset in session.boundaries())


def _over_limit_text_split_by_reads(session, reference, steps):
    """Text over a size limit, with non-ASCII bytes, that spans writes.

    Once a command line (over 512 bytes) or, with decode_data, a message (over
    data_size_limit) has passed its limit, CPython stops keeping what it reads,
    but only from one read to the next: the read that crosses the limit is kept
    (and, with decode_data, decoded) whole. So whether bytes past the limit are
    decoded, and whether the kept part ends inside a UTF-8 character, depends on
    how TCP split the input."""
    cuts = session.boundaries()
    limit = session.options.limit
    for step in steps:
        if step.kind in ("command", "partial"):
            over = len(step.text) > 512
        elif step.kind in ("data", "partial-data"):
            over = session.options.decode_data and limit is not None and len(step.text) > limit
        else:
            over = False
        if (
            over
            and any(b >= 0x80 for b in step.text)
            and any(step.start < c < step.stop for c in cuts)
        ):
            return True
    return False


def _unless_lockstep(predicate):
    """Reads split as writes do only in lockstep sessions: elsewhere, timing."""

    def unstable(session, reference, steps):
        return not session.lockstep and predicate(session, reference, steps)

    return unstable


def _too_much_data(session, reference, steps):
    return any(step.kind == "data" and step.code == 552 for step in steps)


def _empty_data(session, reference, steps):
    """A 354 reply followed straight away by '.' CRLF."""
    data = session.data
    return any(
        step.kind == "command" and step.code == 354 and data[step.stop : step.stop + 3] == b".\r\n"
        for step in steps
    )


def _after_quit(session, reference, steps):
    return any(step.kind == "after-quit" for step in steps)


def _after_quit_in_later_write(session, reference, steps):
    """Bytes after QUIT that were not in the same write as QUIT's line end: CPython
    executes them only if it happens to read them before it closes."""
    tails = [step for step in steps if step.kind == "after-quit"]
    return bool(tails) and any(cut >= tails[0].start for cut in session.boundaries())


def _dropped_with_later_writes(session, reference, steps):
    """The reference dropped the connection and the client wrote again after the
    start of the line it dropped on: that client may see fewer replies."""
    if not reference.dropped:
        return False
    step = _crash_step(steps)
    start = step.start if step is not None else 0
    return any(cut > start for cut in session.boundaries())


def _message_records(outcome):
    """The process_message records of ``outcome``, as compared (peer normalised)."""
    return [
        record
        for record in outcome.comparable()[1]
        if json.loads(record).get("event") == "message"
    ]


def _refused_rcpt_options(session, reference, steps):
    """A message the reference delivered with the options of a refused RCPT."""
    return any(
        json.loads(record)["kwargs"] != _as_accepted_rcpt_kwargs(json.loads(record))
        for record in _message_records(reference)
    )


def _as_accepted_rcpt_kwargs(record):
    """``record``'s kwargs with rcpt_options as an accepted RCPT leaves them: empty,
    since no RCPT parameter is supported."""
    kwargs = record["kwargs"]
    if "dict" not in kwargs:
        return kwargs
    return {
        "dict": [
            [key, {"list": []}] if key == {"str": "rcpt_options"} else [key, value]
            for key, value in kwargs["dict"]
        ]
    }


REFUSED_MAIL_WITH_SMTPUTF8 = re.compile(rb"(?i)^MAIL .*[ \t]SMTPUTF8(?:[ \t=]|$)")


def _stale_smtputf8_step(session, reference, steps):
    """The index of the first reply in UTF-8 that comes after a refused MAIL that
    asked for SMTPUTF8, or None."""
    if not session.options.smtputf8:
        return None
    refused = False
    for index, step in enumerate(steps):
        if refused and step.reply and any(b >= 0x80 for line in step.reply for b in line):
            return index
        if step.kind == "command" and REFUSED_MAIL_WITH_SMTPUTF8.match(step.text):
            refused = refused or (step.code is not None and step.code >= 500 and step.code != 503)
    return None


def _refused_mail_sets_smtputf8(session, reference, steps):
    return _stale_smtputf8_step(session, reference, steps) is not None


# -- where each fix starts to matter (Divergence.point) ----------------------


def _index(steps, step):
    return len(steps) if step is None else steps.index(step)


def _at_crash(session, reference, steps):
    """The step CPython dropped the connection on (or, if it dropped on bytes it
    never answered, the first such step)."""
    step = _crash_step(steps)
    if step is None:
        step = next((s for s in steps if s.reply is None), None)
    return _index(steps, step)


def _at_first(predicate):
    """The first step for which ``predicate(session, step)`` holds: one that CPython
    answers as we do, but whose effect on the state differs."""

    def point(session, reference, steps):
        for index, step in enumerate(steps):
            if predicate(session, step):
                return index
        return len(steps)

    return point


_at_552 = _at_first(lambda session, step: step.kind == "data" and step.code == 552)
_at_data_then_dot = _at_first(
    lambda session, step: (
        step.kind == "command"
        and step.code == 354
        and session.data[step.stop : step.stop + 3] == b".\r\n"
    )
)
_at_quit = _at_first(lambda session, step: step.kind == "command" and step.code == 221)


def _at_refused_options_message(session, reference, steps):
    records = [json.loads(record) for record in _message_records(reference)]
    delivered = 0
    for index, step in enumerate(steps):
        if step.kind == "data" and step.code == 250:
            record = records[delivered] if delivered < len(records) else None
            if record is not None and record["kwargs"] != _as_accepted_rcpt_kwargs(record):
                return index
            delivered += 1
    return len(steps)


def _at_stale_smtputf8(session, reference, steps):
    index = _stale_smtputf8_step(session, reference, steps)
    return len(steps) if index is None else index


# -- the fixed behaviour (Divergence.check) -----------------------------------


def _delivered_before(steps, point):
    """Messages CPython delivered before step ``point`` (our recording server
    answers each with 250)."""
    return sum(1 for step in steps[:point] if step.kind == "data" and step.code == 250)


def _from_point(expect):
    """A check: the candidate gave the reference's replies and messages before the
    divergence's point; ``expect(session, reference, candidate, steps, point,
    replies)`` (``replies``: the candidate's replies from the point on, grouped)
    returns None; and the candidate did not drop the connection but ended it
    cleanly."""

    def check(session, reference, candidate, steps, point):
        before = 1 + sum(len(step.reply or ()) for step in steps[:point])
        expected, got = reference.reply_lines()[:before], candidate.reply_lines()
        if got[:before] != expected:
            return "the replies differ before step %d" % point
        delivered = _delivered_before(steps, point)
        if _message_records(candidate)[:delivered] != _message_records(reference)[:delivered]:
            return "the messages differ before step %d" % point
        replies = group_replies(got[before:])
        complaint = expect(session, reference, candidate, steps, point, replies)
        if complaint is not None:
            return complaint
        if candidate.dropped:
            return "dropped the connection (%s)" % ", ".join(candidate.errors)
        if candidate.end != "eof":
            return "the session did not end cleanly: %s" % candidate.end
        return None

    return check


def _answer(prefix_for):
    """Expect the step at the point answered with a reply starting with
    ``prefix_for(session, step)`` (bytes), or, when the point is past the last
    answered step, no reply at all."""

    def expect(session, reference, candidate, steps, point, replies):
        step = steps[point] if point < len(steps) else None
        if step is None or step.kind not in ("command", "data"):
            return None if not replies else "replied to what CPython never answered: %r" % replies
        prefix = prefix_for(session, step)
        if not replies or not replies[0][-1].startswith(prefix):
            return "expected a %s reply at step %d (%s), got %r" % (
                prefix.decode("ascii", "replace"),
                point,
                bytes_literal(step.text[:60]),
                replies[0] if replies else "nothing",
            )
        return None

    return expect


NOT_UTF8_REPLIES = (
    b"500 Error: command line is not valid UTF-8",
    b"554 Error: message data is not valid UTF-8",
)


def _decode_failure_reply(session, step):
    """Our reply to a line or message CPython failed to decode."""
    if step.kind == "command":
        return b"500 "  # 'not valid UTF-8', or 'line too long' if it is
    if _over_limit(session, step):
        return b"552 Error: Too much mail data"
    return b"554 Error: message data is not valid UTF-8"


def _expect_decoded(session, reference, candidate, steps, point, replies):
    """A character split by a read is decoded: the step gets whatever it would
    have got unsplit (not known here), but not a complaint about UTF-8."""
    if point >= len(steps) or steps[point].kind not in ("command", "data"):
        return None if not replies else "replied to what CPython never answered: %r" % replies
    if not replies:
        return "no reply at step %d" % point
    if replies[0][-1].startswith(NOT_UTF8_REPLIES):
        return "a UTF-8 complaint about UTF-8 split by a read: %r" % replies[0]
    return None


def _expect_mail_syntax(session, step):
    return b"501 Syntax: MAIL FROM: <address>"


def _bad_address_reply(session, step):
    verb = step.text[:4].upper()
    if verb == b"VRFY":
        return b"502 Could not VRFY "  # CPython's reply to an argument without an address
    if verb == b"MAIL":
        return b"501 Syntax: MAIL FROM: <address>"
    return b"501 Syntax: RCPT TO: <address>"


def _echo_reply(session, step):
    return b"502 Could not VRFY " if step.text[:4].upper() == b"VRFY" else b'500 Error: command "'


def _expect_escaped_echo(session, reference, candidate, steps, point, replies):
    complaint = _answer(_echo_reply)(session, reference, candidate, steps, point, replies)
    if complaint is None and replies and any(b >= 0x80 for b in replies[0][-1]):
        return "a non-ASCII reply without SMTPUTF8: %r" % replies[0]
    return complaint


RCPT_LINE = re.compile(rb"(?i)^RCPT(?: |$)")
DATA_LINE = re.compile(rb"(?i)^DATA(?: |$)")


def _expect_commands_after_552(session, reference, candidate, steps, point, replies):
    """The 552, then the transaction is over: what follows the refused message is
    read as commands. If a complete line follows, it is answered; RCPT and DATA
    find no envelope."""
    if replies[:1] != [steps[point].reply]:
        return "expected %r, got %r" % (steps[point].reply, replies[:1])
    replies = replies[1:]
    rest = session.data[steps[point].stop :]
    line, found, _ = rest.partition(b"\r\n")
    if not found:
        return None
    if not replies:
        return "no reply to %s after the 552" % bytes_literal(line[:60])
    short = len(line) <= COMMAND_LINE_LIMIT and _is_utf8(line)
    wanted = None
    if short and RCPT_LINE.match(line):
        wanted = [b"503 Error: need MAIL command"]
    elif short and DATA_LINE.match(line):
        wanted = [b"503 Error: need RCPT command"]
    if wanted is not None and replies[0] != wanted:
        return "after the 552, %s got %r, not %r" % (bytes_literal(line), replies[0], wanted)
    return None


def _expect_empty_message(session, reference, candidate, steps, point, replies):
    """DATA's 354, then 250 OK for the empty message, which is delivered."""
    if replies[:2] != [steps[point].reply, [b"250 OK"]]:
        return "expected %r then 250 OK, got %r" % (steps[point].reply, replies[:2])
    delivered = _delivered_before(steps, point)
    records = _message_records(candidate)
    if len(records) <= delivered:
        return "the empty message was not delivered"
    data = json.loads(records[delivered])["data"]
    if data not in ({"bytes": ""}, {"str": ""}):
        return "the empty message was delivered as %r" % data
    return None


def _expect_nothing_after_quit(session, reference, candidate, steps, point, replies):
    if replies != [steps[point].reply]:
        return "expected only %r from QUIT on, got %r" % (steps[point].reply, replies)
    delivered = _delivered_before(steps, point)
    if len(_message_records(candidate)) != delivered:
        return "a message was delivered after QUIT"
    return None


def _expect_accepted_rcpt_options(session, reference, candidate, steps, point, replies):
    delivered = _delivered_before(steps, point)
    records = [json.loads(record) for record in _message_records(candidate)]
    wanted = json.loads(_message_records(reference)[delivered])
    wanted["kwargs"] = _as_accepted_rcpt_kwargs(wanted)
    if len(records) <= delivered or records[delivered] != wanted:
        return "message %d: expected %r" % (delivered, wanted)
    if not replies or replies[0] != [b"250 OK"]:
        return "the message got %r, not 250 OK" % (replies[0] if replies else "nothing")
    return None


def _expect_ascii_reply(session, reference, candidate, steps, point, replies):
    """The reply CPython sent in UTF-8 (SMTPUTF8 left on by a refused MAIL) is sent
    in ASCII, escaped, unless a MAIL that was accepted asked for SMTPUTF8."""
    sent = steps[point].reply
    escaped = [line.decode("utf-8").encode("ascii", "backslashreplace") for line in sent]
    if not replies or replies[0] not in (sent, escaped):
        return "expected %r (or CPython's %r), got %r" % (
            escaped,
            sent,
            replies[0] if replies else "nothing",
        )
    return None


def _never_checked(session, reference, candidate, steps, point):
    return "this divergence has no generated sessions"


DIVERGENCES = [
    Divergence(
        "cpython-crashes-on-undecodable-command",
        "A command line that is not valid UTF-8 raises UnicodeDecodeError in CPython, "
        "which drops the connection with a traceback. Fixed: 500 and the session goes on.",
        _undecodable_command,
        status="fixed",
        point=_at_crash,
        check=_from_point(_answer(lambda session, step: b"500 ")),
    ),
    Divergence(
        "cpython-crashes-on-bad-address",
        "An address that email._header_value_parser cannot parse (e.g. '<', 'a@', "
        "'<a@[1.2') raises in MAIL/RCPT/VRFY and CPython drops the connection. "
        "Fixed: MAIL and RCPT get their 501 Syntax reply, VRFY '502 Could not VRFY', "
        "and the session goes on.",
        _bad_address,
        status="fixed",
        point=_at_crash,
        check=_from_point(_answer(_bad_address_reply)),
    ),
    Divergence(
        "cpython-crashes-echoing-non-ascii",
        "A reply that echoes non-ASCII text (500 for an unknown command, 502 for "
        "VRFY) before SMTPUTF8 was given cannot be encoded to ASCII: "
        "UnicodeEncodeError, connection dropped. Fixed: the reply is sent, escaped.",
        _non_ascii_echo,
        status="fixed",
        point=_at_crash,
        check=_from_point(_expect_escaped_echo),
    ),
    Divergence(
        "cpython-crashes-on-non-ascii-size-digits",
        "SIZE=<digits that str.isdigit() accepts but int() does not, e.g. '\u00b2'>: "
        "with a size limit CPython raises ValueError and drops the connection, without "
        "one it takes the value. Fixed: 501 Syntax either way.",
        _unicode_size,
        status="fixed",
        point=_at_unicode_size,
        check=_from_point(_answer(_expect_mail_syntax)),
    ),
    Divergence(
        "cpython-crashes-on-size-without-value",
        "A bare SIZE parameter (no '=value') raises AttributeError and CPython drops "
        "the connection. Fixed: 501 Syntax.",
        _size_without_value,
        status="fixed",
        point=_at_crash,
        check=_from_point(_answer(_expect_mail_syntax)),
    ),
    Divergence(
        "cpython-crashes-on-undecodable-bytes-with-decode-data",
        "With decode_data=True, any received bytes that are not UTF-8 (command or "
        "message) raise UnicodeDecodeError and CPython drops the connection. Fixed: "
        "500 for a command line, 554 for a message (552 if it is also too long), "
        "no reply to bytes never terminated, and the session goes on.",
        _decode_failure_is("undecodable-decode-data"),
        status="fixed",
        point=_at_crash,
        check=_from_point(_answer(_decode_failure_reply)),
    ),
    Divergence(
        "cpython-decode-data-utf8-split-across-reads",
        "With decode_data=True CPython decodes each read separately, so a UTF-8 "
        "character split across TCP reads raises UnicodeDecodeError. Whether the "
        "reads split it depends on timing. Fixed: decoded once complete.",
        _decode_failure_is("split"),
        status="fixed",
        point=_at_crash,
        check=_from_point(_expect_decoded),
        unstable=_unless_lockstep(_utf8_split_across_writes),
    ),
    Divergence(
        "cpython-over-limit-input-decoded-per-read",
        "Past a size limit (512-byte command lines; data_size_limit for messages "
        "with decode_data) CPython drops what it reads, but a whole read at a time: "
        "the read that crosses the limit is kept and decoded. So non-UTF-8 bytes past "
        "the limit, or a cut inside a UTF-8 character, give UnicodeDecodeError (a "
        "dropped connection) or not, depending on how TCP split the input. Fixed: "
        "size is judged before decoding: 500 line too long, or 552.",
        _decode_failure_is("over-limit"),
        status="fixed",
        point=_at_crash,
        check=_from_point(_answer(_decode_failure_reply)),
        unstable=_unless_lockstep(_over_limit_text_split_by_reads),
    ),
    Divergence(
        "cpython-stays-in-data-after-552",
        "After '552 Error: Too much mail data' CPython stays in the DATA state and "
        "treats the following commands as another message's text. Fixed: the "
        "transaction is over and what follows is read as commands.",
        _too_much_data,
        status="fixed",
        point=_at_552,
        check=_from_point(_expect_commands_after_552),
    ),
    Divergence(
        "cpython-never-answers-empty-data",
        "DATA followed at once by '.' CRLF is not seen as the end of the message "
        "(the CRLF before the dot was DATA's own), so it is never answered. Fixed: an "
        "empty message, delivered and answered 250 OK.",
        _empty_data,
        status="fixed",
        point=_at_data_then_dot,
        check=_from_point(_expect_empty_message),
    ),
    Divergence(
        "cpython-runs-commands-after-quit",
        "Commands pipelined after QUIT are still executed (a message after QUIT is "
        "even delivered to process_message); if they arrive in a later read than "
        "QUIT, whether CPython runs them depends on timing. Fixed: nothing after "
        "QUIT runs.",
        _after_quit,
        status="fixed",
        point=_at_quit,
        check=_from_point(_expect_nothing_after_quit),
        unstable=_after_quit_in_later_write,
    ),
    Divergence(
        "cpython-refused-rcpt-replaces-rcpt-options",
        "A RCPT refused for its parameters still sets the rcpt_options that "
        "process_message gets. Fixed: only an accepted RCPT sets them (to [], since "
        "none is supported).",
        _refused_rcpt_options,
        status="fixed",
        point=_at_refused_options_message,
        check=_from_point(_expect_accepted_rcpt_options),
    ),
    Divergence(
        "cpython-refused-mail-turns-on-smtputf8",
        "A MAIL with SMTPUTF8 refused for another parameter still turns SMTPUTF8 on "
        "until the transaction ends, so later replies that echo non-ASCII text go out "
        "in UTF-8. Fixed: only an accepted MAIL turns it on; the echo is escaped.",
        _refused_mail_sets_smtputf8,
        status="fixed",
        point=_at_stale_smtputf8,
        check=_from_point(_expect_ascii_reply),
    ),
    Divergence(
        "cpython-command-size-limits-shared",
        "SMTPChannel.command_size_limits is one dict for all connections: each new "
        "connection clears it and each EHLO raises MAIL's limit (by 26 with a size "
        "limit, 10 more with SMTPUTF8) for every connection. Exercised by "
        "SHARED_LIMIT_SCENARIOS (tests/test_differential.py), not by the generated "
        "sessions, which run one at a time; the scenarios check the fixed behaviour "
        "themselves (Scenario.fixed_reply).",
        lambda session, reference, steps: False,
        status="fixed",
        point=lambda session, reference, steps: len(steps),
        check=_never_checked,
    ),
    Divergence(
        "cpython-drop-loses-replies",
        "When CPython drops a connection whose later input is still unread, the "
        "reset that the close causes can make the client lose replies it had not "
        "read yet; how many depends on timing. (The reference's outcome for such "
        "sessions comes from a replay as one write, see reference_outcome.)",
        _dropped_with_later_writes,
        status="timing",
        unstable=_dropped_with_later_writes,
    ),
]


# ---------------------------------------------------------------------------
# Scripted scenarios over two connections to one server (generated sessions run
# one at a time, so they never show what connections share).


def _mail_line(length):
    head, tail = b"MAIL FROM:<", b"@example.org>"
    return head + b"a" * (length - len(head) - len(tail)) + tail + b"\r\n"


class Scenario(collections.namedtuple("Scenario", "name steps cpython_reply fixed_reply")):
    """``steps``: ('open', conn) or ('send', conn, bytes); the last step's reply
    is ``cpython_reply`` from CPython and ``fixed_reply`` once fixed."""


SHARED_LIMIT_SCENARIOS = [
    Scenario(
        "a new connection resets the MAIL line limit of an EHLO'd one",
        [
            ("open", "A"),
            ("send", "A", b"EHLO a.example\r\n"),
            ("open", "B"),
            ("send", "A", _mail_line(530)),
        ],
        b"500 Error: line too long",
        b"250 OK",
    ),
    Scenario(
        "another connection's EHLO raises this one's MAIL line limit",
        [
            ("open", "A"),
            ("open", "B"),
            ("send", "A", b"EHLO a.example\r\n"),
            ("send", "B", b"EHLO b.example\r\n"),
            ("send", "A", _mail_line(550)),
        ],
        b"250 OK",
        b"500 Error: line too long",
    ),
]


def play_scenario(server, scenario):
    """Run ``scenario`` on ``server``; returns {connection: Outcome}."""
    conversation = Conversation(server)
    for step in scenario.steps:
        if step[0] == "open":
            conversation.open(step[1])
        else:
            conversation.send(step[1], step[2])
    return conversation.finish()


def last_reply(outcome):
    lines = outcome.reply_lines()
    return lines[-1] if lines else None


def divergence_named(name):
    for divergence in DIVERGENCES:
        if divergence.name == name:
            return divergence
    raise KeyError(name)


# ===========================================================================
# Running and reporting


class Mismatch:
    def __init__(self, session, reference, candidate, reason):
        self.session = session
        self.reference = reference
        self.candidate = candidate
        self.reason = reason
        self.smaller = None  # a Mismatch on a smaller session, see shrink()

    def describe(self):
        text = self._describe()
        if self.smaller is not None:
            text = "%s\n(a smaller session that mismatches too:)\n%s" % (
                text,
                self.smaller._describe(),
            )
        return text

    def _describe(self):
        return "\n".join(
            [
                "--- session %d: %s" % (self.session.number, self.reason),
                self.session.reproduction(),
                "reference (CPython smtpd):",
                _indent(self.reference.describe()),
                "candidate:",
                _indent(self.candidate.describe()),
            ]
        )


def _indent(text):
    return "\n".join("    " + line for line in text.splitlines())


class Report:
    def __init__(self, seed, candidate_label, reference_label):
        self.seed = seed
        self.candidate_label = candidate_label
        self.reference_label = reference_label
        self.sessions = 0
        self.equal = 0
        self.excluded = collections.Counter()  # name -> sessions
        self.excluded_but_equal = collections.Counter()
        self.checked = collections.Counter()  # fixed divergences whose check passed
        self.shadowed = collections.Counter()  # fixed, but after an earlier divergence
        self.unstable = collections.Counter()  # reference-vs-reference exclusions
        self.reference_dropped = collections.Counter()  # exception name -> sessions
        self.reference_unavailable = 0
        self.mismatches = []
        self.excluded_different = []  # for diagnosis only: never a failure
        self.seconds = 0.0
        self.per_options = collections.Counter()

    def summary(self, limit=10, excluded=0):
        """The report as text: counts, then up to ``limit`` mismatches and up to
        ``excluded`` of the excluded sessions whose outcomes differed."""
        lines = [
            "differential test: candidate %s vs reference %s, seed %s"
            % (self.candidate_label, self.reference_label, self.seed),
            "  sessions run:     %d in %.1f s" % (self.sessions, self.seconds),
            "  compared equal:   %d" % self.equal,
        ]
        for name, count in sorted(self.checked.items()):
            lines.append("  checked by %s (fixed): %d" % (name, count))
        for name, count in sorted(self.shadowed.items()):
            lines.append("  not checked, after an earlier divergence: %s: %d" % (name, count))
        for name, count in sorted(self.excluded.items()):
            lines.append(
                "  excluded by %s: %d (of which %d byte-identical anyway)"
                % (name, count, self.excluded_but_equal[name])
            )
        for name, count in sorted(self.unstable.items()):
            lines.append("  excluded as timing-dependent in CPython (%s): %d" % (name, count))
        for name, count in sorted(self.reference_dropped.items()):
            lines.append("  reference dropped the connection (uncaught %s): %d" % (name, count))
        if self.reference_unavailable:
            lines.append("  reference server unavailable: %d" % self.reference_unavailable)
        lines.append("  mismatches:       %d" % len(self.mismatches))
        for mismatch in self.mismatches[:limit]:
            lines.append(mismatch.describe())
        if len(self.mismatches) > limit:
            lines.append("... and %d more mismatches" % (len(self.mismatches) - limit))
        for mismatch in self.excluded_different[:excluded]:
            lines.append(mismatch.describe())
        return "\n".join(lines)


def judge(session, reference, candidate, report, self_check):
    """Compare one session's two outcomes; update ``report``."""
    report.sessions += 1
    for error in set(reference.errors):
        report.reference_dropped[error] += 1
    if reference.end == "unavailable":
        report.reference_unavailable += 1
    equal = reference.comparable() == candidate.comparable()
    if reference.end == "timeout":
        report.mismatches.append(
            Mismatch(
                session, reference, candidate, "the reference did not finish (harness problem)"
            )
        )
        return
    _, steps = transcript(session.data, reference.reply_lines())
    matching = [d for d in DIVERGENCES if d.applies(session, reference, steps)]
    unstable = [
        d for d in matching if d.unstable is not None and d.unstable(session, reference, steps)
    ]
    if not self_check:
        pending = [d for d in matching if d.status == "pending"]
        matching = [d for d in matching if d.status == "fixed"]
        if strict_mode():
            pending = []  # compared as they are; only timing-dependent ones excluded
        if pending:
            report.excluded[pending[0].name] += 1
            if equal:
                report.excluded_but_equal[pending[0].name] += 1
            elif len(report.excluded_different) < 1000:
                report.excluded_different.append(
                    Mismatch(
                        session,
                        reference,
                        candidate,
                        "excluded by %s, and %s"
                        % (pending[0].name, _difference(reference, candidate)),
                    )
                )
            return
        if matching:
            # From a divergence's point on CPython is no oracle: check only the
            # divergences that come first.
            points = [d.point(session, reference, steps) for d in matching]
            complaints = []
            for divergence, point in zip(matching, points):
                if point > min(points):
                    report.shadowed[divergence.name] += 1
                    continue
                complaint = divergence.check(session, reference, candidate, steps)
                if complaint is None:
                    report.checked[divergence.name] += 1
                else:
                    complaints.append("%s: %s" % (divergence.name, complaint))
            if complaints:
                report.mismatches.append(
                    Mismatch(session, reference, candidate, "; ".join(complaints))
                )
            return
    if unstable:
        report.unstable[unstable[0].name] += 1
        return
    if equal:
        report.equal += 1
    else:
        report.mismatches.append(
            Mismatch(session, reference, candidate, _difference(reference, candidate))
        )


def _difference(reference, candidate):
    ref, cand = reference.comparable(), candidate.comparable()
    what = []
    if ref[0] != cand[0]:
        what.append("replies differ")
    if ref[1] != cand[1]:
        what.append("process_message calls / dropped connections differ")
    if ref[2] != cand[2]:
        what.append("ending differs (%s vs %s)" % (reference.end, candidate.end))
    return "; ".join(what) or "differ"


def compare(session, ref_server, cand_server, report, self_check):
    """Play ``session`` on both servers and judge it into ``report``."""
    ref_outcome = reference_outcome(ref_server, session)
    cand_outcome = play(cand_server, session)
    if ref_outcome.first_try is not None:
        # Judge both sides on the same single write (see reference_outcome).
        if cand_outcome.end in ("timeout", "unavailable"):
            report.sessions += 1
            report.mismatches.append(
                Mismatch(
                    session, ref_outcome.first_try, cand_outcome, "the candidate did not finish"
                )
            )
            return
        first = cand_outcome
        session = session.as_one_write()
        cand_outcome = play(cand_server, session)
        cand_outcome.first_try = first
        cand_outcome.note = "a replay as one write, like the reference's"
    judge(session, ref_outcome, cand_outcome, report, self_check)


SHRINK_MISMATCHES = 3  # how many mismatches of a run get a smaller reproduction
SHRINK_TRIES = 80  # sessions played (on each side) to shrink one


def _pieces_of(session):
    """The session as (chunk index, line) pieces: each chunk cut after its LFs."""
    pieces = []
    for index, chunk in enumerate(session.chunks):
        for line in re.findall(rb"[^\n]*\n|[^\n]+", chunk):
            pieces.append((index, line))
    return pieces


def _rebuild(session, pieces, plan):
    chunks = collections.OrderedDict()
    for index, line in pieces:
        chunks[index] = chunks.get(index, b"") + line
    return Session(
        session.number,
        session.options,
        list(chunks.values()),
        plan,
        session.read_late,
        session.lockstep,
    )


def shrink(mismatch, ref_server, cand_server, self_check):
    """Look for a smaller session that still mismatches: drop one line (up to
    its LF) at a time, keeping each drop after which it still does. Sets
    ``mismatch.smaller``."""
    session = mismatch.session
    pieces = _pieces_of(session)
    tries = 0
    position = len(pieces) - 1
    best = None
    while position >= 0 and tries < SHRINK_TRIES and len(pieces) > 1:
        trial = pieces[:position] + pieces[position + 1 :]
        candidate = _rebuild(session, trial, session.plan + ", shrunk")
        scratch = Report(None, "", "")
        compare(candidate, ref_server, cand_server, scratch, self_check)
        tries += 1
        if scratch.mismatches:
            pieces, best = trial, scratch.mismatches[0]
        position -= 1
    mismatch.smaller = best


def _sessions_from_environment(seed, count):
    only = os.environ.get("SMTPD_COMPAT_DIFF_ONLY", "").strip()
    if only:
        return [generate_session(seed, int(n)) for n in only.split(",") if n.strip()]
    return generate_sessions(seed, count)


def run_differential(
    seed,
    count,
    reference,
    candidate,
    self_check,
    progress=None,
    sessions=None,
    candidate_path=REPO,
):
    """Play ``count`` sessions from ``seed`` (or the given ``sessions``) against
    both sides. ``reference`` and ``candidate`` are (python, impl) pairs;
    ``candidate_path`` is where the candidate imports smtpd_compat from.
    Returns a Report.
    """
    started = time.monotonic()
    report = Report(seed, "%s under %s" % candidate[::-1], "%s under %s" % reference[::-1])
    if sessions is None:
        sessions = _sessions_from_environment(seed, count)
    by_options = collections.OrderedDict((options, []) for options in OPTION_SETS)
    for session in sessions:
        by_options[session.options].append(session)
    servers = {}
    try:
        # Start every server first so that their start-up times overlap.
        for options, group in by_options.items():
            if group:
                servers[options] = (
                    ServerProcess(
                        "reference[%s]" % (options,), reference[0], reference[1], options
                    ),
                    ServerProcess(
                        "candidate[%s]" % (options,),
                        candidate[0],
                        candidate[1],
                        options,
                        candidate_path,
                    ),
                )
                for server in servers[options]:
                    server.launch()
        for options, group in by_options.items():
            if not group:
                continue
            ref_server, cand_server = servers[options]
            for server in (ref_server, cand_server):
                server.wait_ready()  # a server that cannot start at all fails the run
            for session in group:
                found = len(report.mismatches)
                compare(session, ref_server, cand_server, report, self_check)
                if len(report.mismatches) > found and found < SHRINK_MISMATCHES:
                    shrink(report.mismatches[-1], ref_server, cand_server, self_check)
                report.per_options[str(options)] += 1
                if progress is not None:
                    progress(report)
    finally:
        for pair in servers.values():
            for server in pair:
                server.close()
    report.seconds = time.monotonic() - started
    return report


def sides():
    """(reference, candidate) as (python, impl) pairs, or raise LookupError."""
    python = reference_python()
    if python is None:
        raise LookupError(
            "no CPython <= 3.11 interpreter found for the reference smtpd "
            "(set SMTPD_COMPAT_REFERENCE_PYTHON, or install one with pyenv)"
        )
    reference = (python, "cpython")
    candidate = (python, "cpython") if candidate_is_cpython() else (sys.executable, "compat")
    return reference, candidate


if __name__ == "__main__":
    # python tests/differential.py [SESSIONS [SEED]]: the same run as the test.
    count = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SESSIONS
    seed = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_SEED
    reference_side, candidate_side = sides()
    result = run_differential(seed, count, reference_side, candidate_side, candidate_is_cpython())
    print(
        result.summary(
            limit=int(os.environ.get("SMTPD_COMPAT_DIFF_SHOW", "10")),
            excluded=int(os.environ.get("SMTPD_COMPAT_DIFF_SHOW_EXCLUDED", "0")),
        )
    )
    sys.exit(1 if result.mismatches else 0)
