"""--workers N and smtpd_compat.workers: N processes serving one address.

The server runs as ``python -m smtpd_compat`` in a subprocess (forking the test
process itself would copy pytest into every worker).
"""

import glob
import os
import signal
import smtplib
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, WAIT_SECONDS, listening_port

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need os.fork()")

TESTS = os.path.dirname(os.path.abspath(__file__))
MESSAGES = 40


def children_of(pid, count):
    """The pids of ``pid``'s children, once there are ``count`` (Linux /proc)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as status:
                    fields = status.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat.split("/")[2]))
        if len(found) >= count:
            return sorted(found)
        time.sleep(0.01)  # polling /proc, bounded by the deadline
    raise AssertionError("process %d never had %d children" % (pid, count))


class Workers:
    """``python -m smtpd_compat -n --workers 2 -c worker_sink.PidSink`` on port 0."""

    def __init__(self, *options):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, TESTS, env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "smtpd_compat", "-n", "--workers", "2"]
        argv += list(options) + ["-c", "worker_sink.PidSink", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.workers = children_of(self.process.pid, 2)
        deadline = time.monotonic() + WAIT_SECONDS
        self.ports = {listening_port(pid, deadline) for pid in self.workers}
        self.port = next(iter(self.ports))

    def send(self, count):
        for number in range(count):
            with smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT_SECONDS) as client:
                client.sendmail("a@example.org", ["b@example.net"], "message %d\r\n" % number)

    def interrupt(self):
        """Ctrl-C; returns (exit status, {message: pid that took it})."""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=WAIT_SECONDS)
        taken = {}
        for line in out.decode().splitlines():
            pid, message = line.split(" ", 1)
            taken[message] = int(pid)
        return self.process.returncode, taken

    def kill(self):
        # The workers first: they hold the parent's stdout open too.
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=WAIT_SECONDS)


@pytest.fixture
def two_workers():
    started = []

    def start(*options):
        started.append(Workers(*options))
        return started[-1]

    yield start
    for server in started:
        server.kill()


def test_both_workers_listen_on_the_one_port(two_workers):
    server = two_workers()
    assert len(server.ports) == 1


def test_each_message_reaches_the_custom_class_in_a_worker_process(two_workers):
    server = two_workers()
    server.send(MESSAGES)
    status, taken = server.interrupt()
    assert status == 0
    assert sorted(taken) == sorted("message %d" % number for number in range(MESSAGES))
    assert set(taken.values()) <= set(server.workers)


def test_connections_are_spread_over_both_workers(two_workers):
    # The kernel picks a worker per connection; all 40 on one is a 1 in 2**39 chance.
    server = two_workers()
    server.send(MESSAGES)
    _, taken = server.interrupt()
    assert set(taken.values()) == set(server.workers)


def test_ctrl_c_stops_every_worker_and_exits_0(two_workers):
    server = two_workers()
    status, _ = server.interrupt()
    assert status == 0
    for pid in server.workers:
        assert not os.path.exists("/proc/%d" % pid) or _is_zombie(pid)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("count", ["0", "two", "-1"])
def test_a_workers_count_below_1_or_not_a_number_exits_1_with_a_message(count):
    done = subprocess.run(
        [sys.executable, "-m", "smtpd_compat", "-n", "--workers", count, "127.0.0.1:0"],
        capture_output=True,
        timeout=WAIT_SECONDS,
        cwd=REPO,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        b"",
        b"Invalid workers: %s\n" % count.encode(),
    )


def test_workers_api_reports_the_port_it_was_given_for_port_0(tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import smtplib, sys
            sys.path[:0] = [%r, %r]
            from smtpd_compat import workers
            from worker_sink import PidSink

            group = workers.Workers(lambda address: PidSink(address, None),
                                    ("127.0.0.1", 0), 2).start()
            with smtplib.SMTP("127.0.0.1", group.address[1], timeout=20) as client:
                client.sendmail("a@example.org", ["b@example.net"], "over the api\\r\\n")
            group.stop()
            print("status", group.wait(), "workers", len(group.pids))
            """
            % (REPO, TESTS)
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, timeout=WAIT_SECONDS * 2
    )
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr
    assert [line.split(" ", 1)[1] for line in lines[:-1]] == ["over the api"]
    assert lines[-1] == "status 0 workers 2"


def test_workers_end_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            sys.path[:0] = [%r, %r]
            from smtpd_compat import workers
            from worker_sink import PidSink

            group = workers.Workers(lambda address: PidSink(address, None),
                                    ("127.0.0.1", 0), 2, timeout=0.1).start()
            print(*group.pids, flush=True)
            group.wait()
            """
            % (REPO, TESTS)
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.kill()
        parent.wait(WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(_is_zombie(pid) for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their parent"
            time.sleep(0.01)  # polling /proc, bounded by the deadline
    finally:
        parent.stdout.close()
