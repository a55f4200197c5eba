"""A pytest plugin: an SMTP server on a free loopback port, per test.

Opt in from a conftest.py (``pytest_plugins = ["smtpd_compat.pytest_plugin"]``)
or on the command line (``pytest -p smtpd_compat.pytest_plugin``); nothing is
registered merely by installing smtpd_compat.

Fixtures:

smtpd_server
    A running server (``smtpd_compat.controller.Controller`` on 127.0.0.1,
    port 0) that records what it receives.  Attributes: ``host``,
    ``port``, ``messages`` (a list of ``Message``, appended as each message
    is accepted, so it is complete once the client has its 250 reply),
    ``server`` and ``controller``.  Stopped, every socket closed, after the
    test.
smtpd_server_options
    The keyword arguments the server is built with (default: none).
    Override it to test against, say, a size limit or AUTH::

        @pytest.fixture
        def smtpd_server_options():
            return {'data_size_limit': 1000, 'timeout': 5}

Message is a namedtuple of process_message's arguments: ``peer``,
``mailfrom``, ``rcpttos``, ``data``, ``kwargs``.

Public names: RecordingServer, Message, RunningServer, smtpd_server,
smtpd_server_options.
"""

from __future__ import annotations

import collections

import pytest

import smtpd_compat
from smtpd_compat.controller import Controller

__all__ = ['RecordingServer', 'Message', 'RunningServer', 'smtpd_server', 'smtpd_server_options']

Message = collections.namedtuple('Message', 'peer mailfrom rcpttos data kwargs')

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple, Union
del TYPE_CHECKING


class RecordingServer(smtpd_compat.SMTPServer):
    """Accepts every message and keeps it in ``messages``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: List[Message] = []
        smtpd_compat.SMTPServer.__init__(self, *args, **kwargs)

    def process_message(
        self,
        peer: Any,
        mailfrom: str,
        rcpttos: List[str],
        data: Union[bytes, str],
        **kwargs: Any,
    ) -> Optional[str]:
        self.messages.append(Message(peer, mailfrom, rcpttos, data, kwargs))
        return None


class RunningServer:
    """What the smtpd_server fixture yields."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.server = controller.server
        self.host, self.port = controller.host, controller.port
        self.messages = controller.server.messages


@pytest.fixture
def smtpd_server_options() -> Dict[str, Any]:
    return {}


@pytest.fixture
def smtpd_server(smtpd_server_options: Dict[str, Any]) -> Iterator[RunningServer]:
    options = dict(smtpd_server_options)

    def build(address: Tuple[str, int], socket_map: Dict[int, Any]) -> RecordingServer:
        return RecordingServer(address, None, map=socket_map, **options)

    with Controller(build) as controller:
        yield RunningServer(controller)
