"""Fixtures shared by the end-to-end tests: servers on 127.0.0.1 port 0, run either
in a background thread of this process or as a ``python -m ...`` subprocess.

Every wait here is bounded by a deadline; nothing sleeps to synchronise.
"""

import glob
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from smtpd_compat import asyncore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The extension tests' fixtures (servers with options, a test certificate).
pytest_plugins = ["extension_support"]
WAIT_SECONDS = 20


def pytest_addoption(parser):
    group = parser.getgroup("differential", "tests/test_differential.py")
    group.addoption(
        "--sessions",
        type=int,
        default=None,
        help="generated sessions for the differential test (default 900)",
    )
    group.addoption("--seed", default=None, help="seed for the differential test")


def pytest_configure(config):
    # The differential test reads these when it is imported, after this runs.
    for option, variable in (
        ("sessions", "SMTPD_COMPAT_DIFF_SESSIONS"),
        ("seed", "SMTPD_COMPAT_DIFF_SEED"),
    ):
        value = config.getoption(option)
        if value is not None:
            os.environ[variable] = str(value)


# --------------------------------------------------------------------------
# A server in a background thread, on its own socket map.


class LoopThread:
    """Runs ``asyncore.loop`` over one private map in a daemon thread."""

    def __init__(self, socket_map):
        self.map = socket_map
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def _run(self):
        deadline = time.monotonic() + 120
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                asyncore.loop(timeout=0.02, map=self.map, count=1)
        except BaseException as exc:  # reported to the test by stop()
            self.error = exc
        finally:
            asyncore.close_all(map=self.map)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "server loop did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def run_in_thread():
    """Start ``factory(map)`` (an SMTPServer built on port 0) in a loop thread.

    Returns the server; its loop is stopped and its sockets closed at teardown.
    """
    started = []

    def start(factory):
        socket_map = {}
        server = factory(socket_map)
        started.append(LoopThread(socket_map).start())
        return server

    yield start
    for loop in reversed(started):
        loop.stop()


# --------------------------------------------------------------------------
# A server as a subprocess: the command line, exactly as a user types it.


def listening_port(pid, deadline):
    """The TCP port a process listens on, read from /proc (Linux).

    The server binds port 0 and prints nothing about it, as CPython's does, so
    the kernel's socket table is the one place to learn it.
    """
    while time.monotonic() < deadline:
        inodes = set()
        for fd in glob.glob("/proc/%d/fd/*" % pid):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as rows:
                    next(rows)
                    for row in rows:
                        fields = row.split()
                        listening = fields[3] == "0A"
                        if listening and fields[9] in inodes:
                            return int(fields[1].rsplit(":", 1)[1], 16)
            except FileNotFoundError:
                continue
        time.sleep(0.01)  # polling the kernel, bounded by the deadline
    raise AssertionError("process %d never listened" % pid)


class ServerProcess:
    def __init__(self, argv):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Run the tree under test, wherever pytest was started from.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.port = listening_port(self.process.pid, time.monotonic() + WAIT_SECONDS)
        self._out = b""

    def read_stdout_until(self, marker):
        """Read stdout until ``marker`` has been seen; return everything read."""
        deadline = time.monotonic() + WAIT_SECONDS
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while marker.encode() not in self._out:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "timed out; got %r" % self._out
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 65536)
                    assert chunk, "server exited; got %r" % self._out
                    self._out += chunk
        return self._out.decode()

    def interrupt(self):
        """Ctrl-C; returns (exit status, rest of stdout, stderr)."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=WAIT_SECONDS)
        return self.process.returncode, (self._out + out).decode(), err.decode()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=WAIT_SECONDS)


def reference_python():
    """A CPython <= 3.11 interpreter (it still has smtpd), or None.

    SMTPD_COMPAT_REFERENCE_PYTHON names one; else this interpreter if it has
    smtpd; else the newest 3.8-3.11 that pyenv holds.
    """
    named = os.environ.get("SMTPD_COMPAT_REFERENCE_PYTHON")
    if named:
        return named
    if sys.version_info < (3, 12):
        return sys.executable
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        for minor in ("3.11", "3.10", "3.9", "3.8"):
            found = sorted(
                glob.glob(os.path.join(root, "versions", minor + ".*", "bin", "python" + minor))
            )
            if found:
                return found[-1]
    return None


@pytest.fixture(params=["smtpd_compat", "cpython"])
def smtpd_command(request):
    """The start of a ``python -m`` command line for ours and, where one is
    found, for CPython's own smtpd: the same assertions run against both."""
    if request.param == "smtpd_compat":
        return [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "smtpd_compat"]
    python = reference_python()
    if python is None:
        pytest.skip("no CPython <= 3.11 interpreter found to run the reference smtpd")
    return [python, "-W", "ignore::DeprecationWarning", "-m", "smtpd"]


@pytest.fixture
def start_process():
    started = []

    def start(argv):
        server = ServerProcess(argv)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
