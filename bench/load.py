"""Load for the benchmark: Postfix's smtp-source, and small Python clients.

Every client talks to 127.0.0.1 only, and every loop in here is bounded in
count and in time.
"""

import glob
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = '127.0.0.1'
REPLY_TIMEOUT = 30.0  # seconds; a server that stalls this long has failed


class LoadFailed(Exception):
    """The server stopped answering (or died) under this load."""


# ---------------------------------------------------------------------------
# smtp-source, from Debian's postfix package, unpacked without installing


def find_smtp_source(cache, explicit=None):
    """Return (argv prefix, environment) for running smtp-source.

    Uses ``explicit``, else one on PATH, else one unpacked in ``cache`` by
    ``apt-get download postfix`` and ``dpkg -x`` (no mail server installed).
    """
    if explicit:
        return [explicit], None
    on_path = shutil.which('smtp-source')
    if on_path:
        return [on_path], None
    root = os.path.join(cache, 'postfix')
    binary = os.path.join(root, 'usr', 'sbin', 'smtp-source')
    if not os.path.exists(binary):
        _unpack_postfix(root)
    env = dict(os.environ)
    libs = os.path.join(root, 'usr', 'lib', 'postfix')
    env['LD_LIBRARY_PATH'] = os.pathsep.join(filter(None, [libs, env.get('LD_LIBRARY_PATH')]))
    return [binary], env


def _unpack_postfix(root):
    for tool in ('apt-get', 'dpkg'):
        if not shutil.which(tool):
            sys.exit(
                'smtp-source not found and no %s to fetch it: install postfix, '
                'or pass --smtp-source PATH' % tool
            )
    print('fetching smtp-source: apt-get download postfix ...', file=sys.stderr)
    with tempfile.TemporaryDirectory() as download:
        fetch = ['apt-get', 'download', 'postfix']
        done = subprocess.run(fetch, cwd=download, capture_output=True)
        if done.returncode != 0:
            # The package lists may be missing or stale.
            subprocess.run(['apt-get', 'update'], capture_output=True)
            done = subprocess.run(fetch, cwd=download, capture_output=True)
        packages = glob.glob(os.path.join(download, 'postfix_*.deb'))
        if done.returncode != 0 or not packages:
            sys.exit('apt-get download postfix failed:\n' + done.stderr.decode(errors='replace'))
        os.makedirs(root, exist_ok=True)
        subprocess.run(['dpkg', '-x', packages[0], root], check=True)


def smtp_source(command, env, port, messages, sessions, length, keep_open, limit):
    """Send ``messages`` messages of ``length`` payload bytes over ``sessions``
    parallel sessions, for at most ``limit`` seconds.

    Returns (messages delivered, seconds taken, CPU seconds smtp-source
    used).  A server too slow to finish in time is measured on what it did
    until then.
    """
    argv = list(command) + [
        '-A',
        '-c',
        '-M',
        'bench.example',
        '-s',
        str(sessions),
        '-m',
        str(messages),
        '-l',
        str(length),
    ]
    if keep_open:
        argv.append('-d')
    argv.append('%s:%d' % (HOST, port))
    # smtp-source is the only child reaped while it runs: the change in the
    # children's usage is its own.
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    deadline = started + limit
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counter = b''  # smtp-source -c writes "1\r2\r3\r..." as messages complete
    timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                process.kill()
                break
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            counter = (counter + chunk)[-64:]
    elapsed = min(time.perf_counter(), deadline) - started
    _, errors = process.communicate()
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    done = [int(word) for word in counter.split(b'\r') if word.strip().isdigit()]
    delivered = done[-1] if done else 0
    if not timed_out and process.returncode != 0:
        raise LoadFailed('smtp-source: ' + errors.decode(errors='replace').strip()[-300:])
    if not delivered:
        raise LoadFailed('no message delivered in %d s' % limit)
    return delivered, elapsed, client_cpu


# ---------------------------------------------------------------------------
# Python clients


class Session:
    """A blocking SMTP client connection that reads whole replies."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
        self.pending = b''

    def read_reply(self):
        """Read one (possibly multi-line) reply; return its last line."""
        while True:
            end = self.pending.find(b'\r\n')
            while end != -1:
                line, self.pending = self.pending[:end], self.pending[end + 2 :]
                if line[3:4] != b'-':
                    return line
                end = self.pending.find(b'\r\n')
            self._receive()

    def read_bytes(self, count):
        while len(self.pending) < count:
            self._receive()
        self.pending = self.pending[count:]

    def _receive(self):
        try:
            data = self.sock.recv(1 << 16)
        except OSError as error:
            raise LoadFailed('connection failed: %s' % error) from None
        if not data:
            raise LoadFailed('the server closed the connection')
        self.pending += data

    def command(self, line):
        self.sock.sendall(line + b'\r\n')
        return self.read_reply()

    def close(self):
        self.sock.close()


def fresh_sessions(port, count):
    """Connect, read the greeting, EHLO, QUIT, ``count`` times, one after
    another; return the median seconds per session."""
    took = []
    for _ in range(count):
        started = time.perf_counter()
        session = Session(port)
        session.read_reply()
        session.command(b'EHLO bench.example')
        session.command(b'QUIT')
        session.close()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


NOOP_REPLY = b'250 OK\r\n'


def pipelined_noops(port, count, repeats):
    """Write ``count`` NOOPs in one sendall() and read all the replies,
    ``repeats`` times on one session; return the median seconds per write."""
    session = Session(port)
    session.read_reply()
    burst = b'NOOP\r\n' * count
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.sock.sendall(burst)
        session.read_bytes(len(NOOP_REPLY) * count)
        took.append(time.perf_counter() - started)
    session.close()
    return statistics.median(took)


def open_idle_sessions(port, count):
    """Open ``count`` sessions and read each one's greeting; return them.

    One at a time, so that a short listen backlog costs no dropped SYNs.
    """
    sessions = []
    try:
        for _ in range(count):
            session = Session(port)
            sessions.append(session)
            session.read_reply()
    except (LoadFailed, OSError) as error:
        for session in sessions:
            session.close()
        raise LoadFailed('after %d sessions: %s' % (len(sessions), error)) from None
    return sessions


def noop_round_trips(port, count):
    """``count`` NOOP round trips on a new session; return the median
    seconds per round trip."""
    session = Session(port)
    session.read_reply()
    took = []
    for _ in range(count):
        started = time.perf_counter()
        session.command(b'NOOP')
        took.append(time.perf_counter() - started)
    session.close()
    return statistics.median(took)


def raise_fd_limit():
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ImportError, ValueError, OSError):
        return None
