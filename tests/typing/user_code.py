"""Code as users write it against ``smtpd_compat``, checked by the mypy tox
envs (``mypy --strict`` on this file): the package's annotations must accept
it without complaint.  Never run; pytest does not collect it."""

from typing import Any, List, Optional, Tuple, Union

import smtpd_compat as smtpd
from smtpd_compat import asynchat, asyncore
from smtpd_compat.controller import Controller


class Sink(smtpd.SMTPServer):
    def process_message(
        self,
        peer: Tuple[str, int],
        mailfrom: str,
        rcpttos: List[str],
        data: Union[bytes, str],
        **kwargs: Any,
    ) -> Optional[str]:
        return None if data else '554 empty'


class Channel(smtpd.SMTPChannel):
    def smtp_VRFY(self, arg: str) -> None:
        self.push('252 Cannot VRFY user')


class Lines(asynchat.async_chat):
    def collect_incoming_data(self, data: bytes) -> None:
        self.incoming.append(data)

    def found_terminator(self) -> None:
        self.push(b''.join(self.incoming) + b'\r\n')


def serve() -> None:
    sink = Sink(('127.0.0.1', 0), None)
    sink.channel_class = Channel
    Sink(('::1', 0, 0, 0), ('127.0.0.1', 25), map={}, decode_data=True)
    smtpd.PureProxy(('127.0.0.1', 0), ('127.0.0.1', 25))
    asyncore.loop(timeout=1.0, count=1)
    with Controller(Sink) as controller:
        print(controller.host, controller.port)
