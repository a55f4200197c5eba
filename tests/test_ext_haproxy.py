"""A real HAProxy in front of two smtpd_compat processes, one sent PROXY v1
headers and one v2: every message arrives exactly once, from the client's
own address, and both servers take a share.

HAProxy listens on a loopback socket this test binds to port 0 and hands
over (``bind fd@N``); it is skipped, saying why, where there is no haproxy.
"""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys

import pytest

from extension_support import WAIT_SECONDS

TESTS = os.path.dirname(os.path.abspath(__file__))
MESSAGES = 20

CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 10s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind fd@{fd}
    default_backend mail
backend mail
    balance roundrobin
    server first 127.0.0.1:{first} send-proxy
    server second 127.0.0.1:{second} send-proxy-v2
"""


@pytest.fixture
def haproxy_binary():
    found = shutil.which("haproxy") or next(
        (
            path
            for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
            if os.access(path, os.X_OK)
        ),
        None,
    )
    if found is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    return found


@pytest.fixture
def proxied_backend(start_process, monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    )

    def start():
        return start_process(
            [
                sys.executable,
                "-m",
                "smtpd_compat",
                "-n",
                "-c",
                "ext_sink.Sink",
                "--proxy-protocol",
                "127.0.0.1:0",
            ]
        )

    return start


def test_haproxy_spreads_messages_over_two_servers_and_they_see_each_client(
    haproxy_binary, proxied_backend, tmp_path
):
    first, second = proxied_backend(), proxied_backend()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(fd=listener.fileno(), first=first.port, second=second.port))
    haproxy = subprocess.Popen(
        [haproxy_binary, "-db", "-f", str(config)],
        pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        sent = {}
        for index in range(MESSAGES):
            # Connections queue on our listening socket until HAProxy takes
            # them, so there is nothing to wait for before the first one.
            with smtplib.SMTP(
                "127.0.0.1", listener.getsockname()[1], timeout=WAIT_SECONDS
            ) as smtp:
                client = smtp.sock.getsockname()
                sender = "sender%d@example.org" % index
                assert smtp.sendmail(sender, ["b@example.org"], "message %d" % index) == {}
                sent[sender] = "%s:%d" % client
    finally:
        haproxy.kill()
        haproxy.communicate(timeout=WAIT_SECONDS)
        listener.close()
    # Every message was acknowledged, so each server has printed its own.
    outputs = [
        re.findall(r"received from=(\S+) peer=(\S+)", server.interrupt()[1])
        for server in (first, second)
    ]
    received = sorted(outputs[0] + outputs[1])
    assert received == sorted(sent.items())
    assert len(outputs[0]) == len(outputs[1]) == MESSAGES // 2
