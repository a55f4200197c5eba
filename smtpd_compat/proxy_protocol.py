"""The PROXY protocol, versions 1 and 2, in front of SMTP sessions.

A load balancer such as HAProxy that passes TCP through to us hides the
client: every connection comes from the balancer.  With ``send-proxy`` (or
``send-proxy-v2``) it starts each connection with a header naming the
client.  ``SMTPServer(..., proxy_protocol=True)`` reads that header before
the session begins and makes ``channel.peer`` (and so the ``peer`` given to
``process_message``) the client's address.

Every connection must then start with a header: one that is missing,
malformed or not finished within the prelude's deadline closes the
connection unanswered, since only a balancer may speak first.  ``LOCAL``
(v2) and ``UNKNOWN`` (v1) headers, which balancers send for their own health
checks, keep the real peer address.

The header format is HAProxy's "The PROXY protocol, Versions 1 & 2"
(doc/proxy-protocol.txt).  Parsing is pure and can be used on its own:

    parse(data) -> (length, Header) or None
        Read a header from the start of *data*; None if *data* is a
        proper beginning of one; HeaderError if it cannot be one.
    Header(version, source, destination)
        ``source``/``destination`` are addresses as getpeername() gives
        them ((host, port) or (host, port, 0, 0) for IPv6), or None for
        LOCAL/UNKNOWN.
    HeaderError
        A ValueError.
    ProxyProtocol, HeaderStep
        The hooks.Extension and hooks.Prelude step.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import struct

from . import hooks

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple, Union

    from . import SMTPChannel, SMTPServer

    _Peer = Union[Tuple[str, int], Tuple[str, int, int, int]]
    _Found = Optional[Tuple[int, 'Header']]  # (length, header)
del TYPE_CHECKING

__all__ = ['parse', 'Header', 'HeaderError', 'ProxyProtocol', 'HeaderStep']

V1_PREFIX = b'PROXY '
V1_MAX_LENGTH = 107  # the longest v1 header, CRLF included
V2_SIGNATURE = b'\r\n\r\n\x00\r\nQUIT\n'
V2_FIXED_LENGTH = 16  # signature, version/command, family, length
V2_MAX_LENGTH = V2_FIXED_LENGTH + 0xFFFF

_V2_COMMAND_LOCAL, _V2_COMMAND_PROXY = 0x0, 0x1
# family nibble -> (address bytes each, struct format of the address pair)
_V2_FAMILIES = {0x1: (4, '!4s4sHH'), 0x2: (16, '!16s16sHH')}
_V2_UNSPEC, _V2_UNIX = 0x0, 0x3
_V2_STREAM = 0x1

Header = collections.namedtuple('Header', 'version source destination')


class HeaderError(ValueError):
    """The bytes at the start of the connection are no PROXY header."""


def parse(data: bytes) -> _Found:
    """Parse a PROXY header at the start of *data* (bytes).

    Returns (length, Header) for a complete header of *length* bytes, or
    None when *data* is too short to tell but could still become one.
    """
    data = bytes(data)
    if _could_begin(data, V2_SIGNATURE):
        return _parse_v2(data)
    if _could_begin(data, V1_PREFIX):
        return _parse_v1(data)
    raise HeaderError('no PROXY header')


def _could_begin(data: bytes, prefix: bytes) -> bool:
    size = min(len(data), len(prefix))
    return data[:size] == prefix[:size]


def _parse_v1(data: bytes) -> _Found:
    end = data.find(b'\r\n', 0, V1_MAX_LENGTH)
    if end == -1:
        if len(data) >= V1_MAX_LENGTH:
            raise HeaderError('v1 header longer than %d bytes' % V1_MAX_LENGTH)
        if b'\n' in data:
            raise HeaderError('v1 header ends in a bare LF')
        return None
    length = end + 2
    words = data[:end].split(b' ')
    if len(words) < 2 or words[0] != b'PROXY':
        raise HeaderError('malformed v1 header')
    if words[1] == b'UNKNOWN':
        # The rest of an UNKNOWN line is to be ignored, whatever it holds.
        return length, Header(1, None, None)
    if words[1] not in (b'TCP4', b'TCP6') or len(words) != 6:
        raise HeaderError('malformed v1 header')
    version = 4 if words[1] == b'TCP4' else 6
    source = _v1_address(words[2], words[4], version)
    destination = _v1_address(words[3], words[5], version)
    return length, Header(1, source, destination)


def _v1_address(host: bytes, port: bytes, version: int) -> _Peer:
    try:
        text = host.decode('ascii')
        address = ipaddress.ip_address(text)
    except (UnicodeDecodeError, ValueError):
        raise HeaderError('bad v1 address %r' % host) from None
    if address.version != version:
        raise HeaderError('v1 address %r is not IPv%d' % (host, version))
    # A port is decimal, 0-65535, with no sign and no leading zeros.
    if not port.isdigit() or (port[:1] == b'0' and port != b'0') or int(port) > 0xFFFF:
        raise HeaderError('bad v1 port %r' % port)
    return _peer_address(address, int(port))


def _peer_address(
    address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address], port: int
) -> _Peer:
    # As getpeername() gives them: IPv6 addresses come with flow info and
    # scope id.
    if address.version == 6:
        return (str(address), port, 0, 0)
    return (str(address), port)


def _parse_v2(data: bytes) -> _Found:
    if len(data) < V2_FIXED_LENGTH:
        return None
    version_command, family_transport, size = struct.unpack('!BBH', data[12:16])
    if version_command >> 4 != 2:
        raise HeaderError('unsupported PROXY version %d' % (version_command >> 4))
    command = version_command & 0xF
    if command not in (_V2_COMMAND_LOCAL, _V2_COMMAND_PROXY):
        raise HeaderError('unknown v2 command %d' % command)
    length = V2_FIXED_LENGTH + size
    if len(data) < length:
        return None
    family, transport = family_transport >> 4, family_transport & 0xF
    if command == _V2_COMMAND_LOCAL:
        # A balancer's own connection: the addresses, if any, mean nothing.
        return length, Header(2, None, None)
    if family in (_V2_UNSPEC, _V2_UNIX):
        # Nothing we can express as an IP peer: keep the real one.
        return length, Header(2, None, None)
    if family not in _V2_FAMILIES or transport != _V2_STREAM:
        raise HeaderError('unsupported v2 family/transport %#04x' % family_transport)
    address_size, layout = _V2_FAMILIES[family]
    if size < 2 * address_size + 4:
        raise HeaderError('v2 address block too short')
    source, destination, source_port, destination_port = struct.unpack(
        layout, data[V2_FIXED_LENGTH : V2_FIXED_LENGTH + 2 * address_size + 4]
    )
    # Anything after the addresses is TLVs, which we have no use for.
    return length, Header(
        2,
        _peer_address(ipaddress.ip_address(source), source_port),
        _peer_address(ipaddress.ip_address(destination), destination_port),
    )


class HeaderStep:
    """Prelude step: consume exactly the header, then let SMTP (or TLS)
    have the rest of the stream."""

    def __init__(self) -> None:
        self._received = b''

    def advance(self, prelude: hooks.Prelude) -> Optional[str]:
        sock: Any = prelude.socket
        try:
            # Peek, so that what follows the header stays in the socket
            # for whoever reads next (a TLS handshake may be right behind).
            peeked = sock.recv(V2_MAX_LENGTH - len(self._received), socket.MSG_PEEK)
        except BlockingIOError:
            return hooks.READ
        if not peeked:
            raise HeaderError('connection closed before the PROXY header')
        found = parse(self._received + peeked)
        if found is None:
            # All of it belongs to the header: take it out of the socket,
            # or it would stay readable and the loop would spin on it.
            self._received += _recv_exactly(sock, len(peeked))
            return hooks.READ
        length, header = found
        _recv_exactly(sock, length - len(self._received))
        if header.source is not None:
            prelude.connection.peer = header.source
        return None


def _recv_exactly(sock: Any, size: int) -> bytes:
    # The bytes were peeked, so they are there to be read in full.
    data = b''
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            raise HeaderError('connection closed in the PROXY header')
        data += piece
    return data


class ProxyProtocol(hooks.Extension):
    def prelude_steps(self, server: SMTPServer, connection: hooks.Connection) -> List[hooks._Step]:
        return [HeaderStep()]

    def opened(self, channel: SMTPChannel, connection: hooks.Connection) -> None:
        if connection.peer is not None:
            channel.peer = connection.peer
