"""Shared helpers for the pytest port of CPython's smtpd/asyncore/asynchat tests.

This module is the single place that decides which implementation the
ported tests exercise, from the environment variable ``SMTPD_COMPAT_IMPL``:

``compat`` (the default)
    ``smtpd_compat``, ``smtpd_compat.asyncore`` and ``smtpd_compat.asynchat``.
``cpython``
    the standard library's ``smtpd``, ``asyncore`` and ``asynchat``.  They
    were removed in Python 3.12; there the whole port is skipped.

It also provides what the port needs instead of CPython's ``test.support``
and ``test.mock_socket``: a scripted fake of the ``socket`` module for the
SMTP channel tests, loopback address helpers and a check of a module's
``__all__``.  Nothing here imports from the ``test`` package, so the port runs
on every supported interpreter and from an sdist.

Public names: IMPL_ENV, IMPL_NAME, load_implementation, FakeSocketModule,
ScriptedSocket, LOOPBACK_V4, LOOPBACK_V6, IPV6_ENABLED, HAS_AF_UNIX,
HAS_POLL, expected_public_names, join_or_fail.
"""

import importlib
import os
import select
import socket
import sys
import types
import warnings

import pytest

IMPL_ENV = "SMTPD_COMPAT_IMPL"
IMPL_NAME = os.environ.get(IMPL_ENV, "").strip().lower() or "compat"

# Module names, in the order smtpd, asyncore, asynchat, for each choice.
_MODULE_NAMES = {
    "compat": ("smtpd_compat", "smtpd_compat.asyncore", "smtpd_compat.asynchat"),
    "cpython": ("smtpd", "asyncore", "asynchat"),
}

LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"

HAS_AF_UNIX = hasattr(socket, "AF_UNIX")
HAS_POLL = hasattr(select, "poll")


def _can_bind_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    with probe:
        try:
            probe.bind((LOOPBACK_V6, 0))
        except OSError:
            return False
    return True


IPV6_ENABLED = _can_bind_ipv6_loopback()


def load_implementation():
    """Return the (smtpd, asyncore, asynchat) modules under test.

    Meant to be called at the top of a test module: when the requested
    implementation cannot exist on this interpreter the calling module is
    skipped as a whole, with the reason stated.
    """
    if IMPL_NAME not in _MODULE_NAMES:
        raise RuntimeError(
            "%s=%r is not understood; use 'compat' or 'cpython'" % (IMPL_ENV, IMPL_NAME)
        )
    if IMPL_NAME == "cpython" and sys.version_info >= (3, 12):
        pytest.skip(
            "%s=cpython: the standard library has no smtpd/asyncore/asynchat "
            "on Python %d.%d (removed in 3.12)" % ((IMPL_ENV,) + sys.version_info[:2]),
            allow_module_level=True,
        )
    with warnings.catch_warnings():
        # CPython's modules announce their deprecation when first imported;
        # that warning is not what these tests are about.
        warnings.simplefilter("ignore", DeprecationWarning)
        modules = tuple(importlib.import_module(name) for name in _MODULE_NAMES[IMPL_NAME])
    for wanted, module in zip(_MODULE_NAMES[IMPL_NAME], modules):
        # Something may have rebound sys.modules["smtpd"] and friends (the
        # runner of CPython's original files does); then we would not be
        # testing what IMPL_NAME says.
        if module.__name__ != wanted:
            raise RuntimeError(
                "%s=%s wants module %r but importing it gives %r (sys.modules "
                "was remapped); run the ported tests in a separate process"
                % (IMPL_ENV, IMPL_NAME, wanted, module.__name__)
            )
    return modules


# --------------------------------------------------------------------------
# A scripted stand-in for the socket module, used by the SMTP channel tests.
# --------------------------------------------------------------------------


class ScriptedSocket:
    """Socket double: hands out queued input lines, records what is sent.

    Every ``recv()`` returns the next queued line with CRLF appended, the way
    a client would type it.  Everything sent is kept in ``sent``; the most
    recent piece is ``last_sent``.
    """

    PEER = ("peer-address", "peer-port")

    def __init__(self, family=None, type=None, proto=None):
        self.family = family
        self.type = type
        self.pending = []
        self.sent = []
        self.last_sent = None
        self.timeout = None

    # -- what the tests drive --------------------------------------------
    def feed(self, line):
        self.pending.append(line)

    # -- what the code under test calls ----------------------------------
    def recv(self, bufsize, flags=0):
        if not self.pending:
            raise AssertionError("recv() called but no scripted input is left")
        return self.pending.pop(0) + b"\r\n"

    def send(self, data, flags=0):
        self.last_sent = bytes(data)
        self.sent.append(self.last_sent)
        return len(data)

    sendall = send

    def accept(self):
        return ScriptedSocket(), "c"

    def getpeername(self):
        return self.PEER

    def getsockname(self):
        return ("0.0.0.0", 0)

    def fileno(self):
        return 0

    def getsockopt(self, level, optname, buflen=None):
        return 0

    def setsockopt(self, level, optname, value):
        return None

    def settimeout(self, value):
        self.timeout = value

    def gettimeout(self):
        return self.timeout

    def setblocking(self, flag):
        return None

    def bind(self, address):
        return None

    def listen(self, backlog=None):
        return None

    def connect(self, address):
        return None

    def close(self):
        return None


class FakeSocketModule(types.ModuleType):
    """Replacement for the ``socket`` module seen by smtpd and asyncore.

    Sockets it creates are ``ScriptedSocket`` objects, ``getfqdn()`` answers
    an empty string; address resolution and all constants and exception
    classes are the real module's.
    """

    def __init__(self):
        super().__init__("fake_socket")

    def socket(self, family=None, type=None, proto=None, fileno=None):
        return ScriptedSocket(family, type, proto)

    @staticmethod
    def getfqdn(name=""):
        return ""

    @staticmethod
    def gethostbyname(name):
        return ""

    def __getattr__(self, name):
        # Only reached for names not set above: constants, exceptions,
        # getaddrinfo and friends come from the real socket module.
        return getattr(socket, name)


# --------------------------------------------------------------------------
# Small replacements for test.support helpers.
# --------------------------------------------------------------------------


def expected_public_names(module, not_exported=()):
    """Names that ``module.__all__`` should list.

    A name counts when it does not start with an underscore, is not in
    ``not_exported``, and either was defined in ``module`` itself (its
    ``__module__`` is the module's name) or carries no ``__module__`` at all
    and is not a module (plain constants).
    """

    def defined_here(value):
        if hasattr(value, "__module__"):
            return value.__module__ == module.__name__
        return not isinstance(value, types.ModuleType)

    candidates = (n for n in dir(module) if not n.startswith("_") and n not in not_exported)
    return [n for n in candidates if defined_here(getattr(module, n))]


def join_or_fail(thread, timeout=10.0):
    """Join ``thread``; fail the test if it is still running after ``timeout``."""
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail("thread %r still running after %.1f s" % (thread.name, timeout))
