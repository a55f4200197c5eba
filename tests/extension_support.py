"""Shared pieces of the extension tests (test_ext_*.py): servers run by our
Controller on 127.0.0.1 port 0, a line-level SMTP client whose every read is
bounded by a socket timeout, and a self-signed certificate made at test time.

Test modules import the fixtures they use from here by name.
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess

import pytest

from smtpd_compat.controller import Controller
from smtpd_compat.pytest_plugin import RecordingServer

# The longest any test waits for one reply or event.  Tests never sleep to
# synchronise: they block on a socket until this runs out.
WAIT_SECONDS = 10
FQDN = socket.getfqdn()


def greeting():
    return b"220 " + FQDN.encode() + b" Python SMTP proxy version 0.3\r\n"


def timeout_reply():
    return b"421 " + FQDN.encode() + b" Error: timeout exceeded\r\n"


# --------------------------------------------------------------------------
# servers


@pytest.fixture
def serve():
    """``serve(**options)`` starts a RecordingServer with those SMTPServer
    options; returns its Controller (``.port``, ``.server.messages``)."""
    controllers = []

    def start(server_class=RecordingServer, **options):
        def build(address, socket_map):
            return server_class(address, None, map=socket_map, **options)

        controller = Controller(build).start()
        controllers.append(controller)
        return controller

    yield start
    for controller in reversed(controllers):
        controller.stop()


# --------------------------------------------------------------------------
# certificates


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """(certificate, key) paths: a self-signed certificate for localhost,
    127.0.0.1 and ::1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    certificate, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            certificate,
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key


@pytest.fixture(scope="session")
def server_context(tls_files):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


@pytest.fixture(scope="session")
def client_context(tls_files):
    """Trusts only the test certificate, and checks the host name."""
    return ssl.create_default_context(cafile=tls_files[0])


# --------------------------------------------------------------------------
# a client that speaks in lines and replies


class Client:
    """A raw SMTP client: exact bytes out, exact replies back."""

    def __init__(self, port, host="127.0.0.1", sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=WAIT_SECONDS)
        self.sock.settimeout(WAIT_SECONDS)
        self._buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection; unread %r" % self._buffer)
        self._buffer += chunk

    def reply(self):
        """One whole reply (every line of a multi-line one), as sent."""
        start = 0
        while True:
            end = self._buffer.find(b"\r\n", start)
            if end == -1:
                self._fill()
                continue
            line = self._buffer[start:end]
            start = end + 2
            if line[3:4] != b"-":
                reply, self._buffer = self._buffer[:start], self._buffer[start:]
                return reply

    def command(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def rest(self):
        """Everything until the server closes the connection."""
        while True:
            try:
                self._fill()
            except EOFError:
                break
            except ConnectionResetError:
                break
        rest, self._buffer = self._buffer, b""
        return rest

    def starttls(self, context, server_hostname="127.0.0.1"):
        assert not self._buffer, "bytes in the clear after STARTTLS: %r" % self._buffer
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.sock.settimeout(WAIT_SECONDS)

    def abort(self):
        """Close with a TCP reset instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def implicit_tls_client(port, context, host="127.0.0.1"):
    raw = socket.create_connection((host, port), timeout=WAIT_SECONDS)
    return Client(port, sock=context.wrap_socket(raw, server_hostname=host))


def send_message(port, mailfrom, rcpttos, body, host="127.0.0.1"):
    """A well-behaved session over smtplib; returns sendmail()'s refusals."""
    import smtplib

    with smtplib.SMTP(host, port, timeout=WAIT_SECONDS) as smtp:
        return smtp.sendmail(mailfrom, rcpttos, body)


def fds_open():
    """How many descriptors this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))
