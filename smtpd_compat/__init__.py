"""smtpd_compat: the ``smtpd`` module that Python 3.12 removed, for 3.8-3.13.

A drop-in replacement (``import smtpd_compat as smtpd``) that behaves like
CPython 3.11's smtpd: a minimal RFC 5321 SMTP server with the RFC 1870 SIZE
and RFC 6531 SMTPUTF8 extensions, built on our own copies of asyncore and
asynchat.  Unlike CPython's module, importing it warns about nothing, and
the faults of CPython's smtpd that README.rst lists (under "Differences from
CPython's smtpd") are fixed.

Public classes (``__all__``):
    SMTPChannel      one client session; subclass it to change the protocol
    SMTPServer       listening socket; override ``process_message()``
    DebuggingServer  prints every message it receives on stdout
    PureProxy        relays every message to another SMTP server

Other module-level names, kept because smtpd had them:
    DEBUGSTREAM, Devnull, program, __version__, NEWLINE, COMMASPACE,
    DATA_SIZE_DEFAULT, usage, Options, parseargs

The command line lives in ``smtpd_compat.__main__`` (``python -m smtpd_compat``).
"""

from __future__ import annotations

import collections
import errno
import getopt
import io
import re
import socket
import sys
import textwrap
import time
import warnings

# Under the names smtpd imported them by, so they can be replaced as there.
from email._header_value_parser import get_addr_spec, get_angle_addr

from smtpd_compat import asynchat, asyncore
from smtpd_compat import hooks as _extension_hooks

# typing is imported only by type checkers: it would cost every start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import smtplib
    import ssl
    from email._header_value_parser import AddrSpec, AngleAddr
    from typing import (
        Any,
        AnyStr,
        DefaultDict,
        Dict,
        Iterable,
        List,
        Literal,
        Mapping,
        NoReturn,
        Optional,
        Sequence,
        Tuple,
        Type,
        Union,
    )

    from _typeshed import SupportsWrite

    from smtpd_compat.auth import _Authenticator

    _Address = Tuple[str, int]  # (host, port), as typeshed's smtpd has it
    # What SMTPServer listens on: also IPv6's (host, port, flowinfo, scope_id).
    _ListenAddress = Union[Tuple[str, int], Tuple[str, int, int, int]]
    # ESMTP parameters: 'VALUE' for KEY=VALUE, True for a bare KEY.
    _Params = Dict[str, Union[str, Literal[True]]]
    # The extension hooks of a server and its channels.
    _Hooks = Union[_extension_hooks.Hooks, _extension_hooks._NoHooks]
    # What PureProxy's relay refused: {recipient: (code, reply)}.
    _Refusals = Mapping[str, Tuple[int, Union[bytes, str]]]
del TYPE_CHECKING

__all__ = ["SMTPChannel", "SMTPServer", "DebuggingServer", "PureProxy"]

_NO_HOOKS = _extension_hooks.NO_HOOKS

# The names below are looked up when used, never captured, so code that swaps
# them (CPython's tests replace ``socket`` and ``DEBUGSTREAM``) is obeyed.
program = sys.argv[0]
__version__ = 'Python SMTP proxy version 0.3'
NEWLINE = '\n'
COMMASPACE = ', '
DATA_SIZE_DEFAULT = 33554432


class Devnull:
    """A write-only sink: the default DEBUGSTREAM."""

    def write(self, msg: str) -> None:
        pass

    def flush(self) -> None:
        pass


DEBUGSTREAM: SupportsWrite[str] = Devnull()
_discard = Devnull.write


def _debugging() -> bool:
    """Whether DEBUGSTREAM keeps what is written to it.

    The default Devnull does not, so debug lines are not even formatted for
    it: one of them is the repr() of a whole message, several times its size.
    """
    return type(DEBUGSTREAM) is not Devnull or Devnull.write is not _discard


def _debug(*values: object) -> None:
    if _debugging():
        print(*values, file=DEBUGSTREAM)


# Replies sent from more than one place.
_OK = '250 OK'
_NEED_HELO = '503 Error: send HELO first'
_DUPLICATE_GREETING = '503 Duplicate HELO/EHLO'
_MAIL_PARAMETERS = ' [SP <mail-parameters>]'
_MODES_CLASH = "decode_data and enable_SMTPUTF8 cannot be set to True at the same time"
# Our own replies, where CPython's smtpd raised and dropped the connection.
_NOT_UTF8_COMMAND = '500 Error: command line is not valid UTF-8'
_NOT_UTF8_DATA = '554 Error: message data is not valid UTF-8'
# RFC 5321 4.2.2's text for 451.
_LOCAL_ERROR = '451 Requested action aborted: local error in processing'
_RELAY_FAILED = '451 Error: could not relay the message'

# What HELP says about each command, in the order it lists them.  The same
# words make the "501 Syntax: ..." replies to malformed commands.
_SYNTAX = {
    'EHLO': 'EHLO hostname',
    'HELO': 'HELO hostname',
    'MAIL': 'MAIL FROM: <address>',
    'RCPT': 'RCPT TO: <address>',
    'DATA': 'DATA',
    'RSET': 'RSET',
    'NOOP': 'NOOP',
    'QUIT': 'QUIT',
    'VRFY': 'VRFY <address>',
}
_SUPPORTED = 'Supported commands: ' + ' '.join(_SYNTAX)

# Longest command line accepted before EHLO raises it for MAIL (RFC 5321).
_COMMAND_LINE_LIMIT = 512
_END_OF_LINE = b'\r\n'
_END_OF_DATA = b'\r\n.\r\n'  # a line holding just a dot ends DATA
# How many connections the kernel may queue for accept().  CPython asked
# for 5: with more clients connecting at once their SYNs were dropped, and
# each waited a second or more to try again.
_LISTEN_BACKLOG = max(socket.SOMAXCONN, 128)
# Read now, from the real module: tests swap ``socket`` for a stand-in.
_NO_DELAY = (getattr(socket, 'IPPROTO_TCP', None), getattr(socket, 'TCP_NODELAY', None))


def _send_without_delay(conn: socket.socket) -> None:
    """Turn off Nagle's algorithm on *conn*.  With it on, the second line of
    a multi-line reply (EHLO's) waited for the client to acknowledge the
    first, which clients delay: some 40 ms, every session."""
    try:
        # None for an option the platform lacks: the TypeError caught below.
        conn.setsockopt(_NO_DELAY[0], _NO_DELAY[1], 1)  # type: ignore[arg-type]
    except (OSError, AttributeError, TypeError):
        pass  # not TCP (a UNIX socket), or a stand-in without the option


# <local-part@domain>, both dot-atoms of ASCII atext (RFC 5322 3.2.3), as
# nearly every client writes it.  The email package's parser reads it as the
# very text between the brackets, in a fraction of the time.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = r'%s(?:\.%s)*' % (_ATEXT, _ATEXT)
_PLAIN_ANGLE_ADDR = re.compile(r'<(%s@%s)>' % (_DOT_ATOM, _DOT_ATOM))
_email_get_angle_addr = get_angle_addr


def _plain_address(arg: str) -> Optional[Tuple[str, str]]:
    """(address, rest) for a plain <local@domain> at the start of *arg*,
    exactly as get_angle_addr() gives them; None for anything else."""
    plain = _PLAIN_ANGLE_ADDR.match(arg)
    if plain is None or get_angle_addr is not _email_get_angle_addr:
        return None  # also when someone has replaced the parser
    rest = arg[plain.end() :]
    if rest[:1] in (' ', '\t'):
        rest = rest.lstrip()  # the parser drops folding white space ...
    if rest[:1] == '(':
        return None  # ... and comments, which it alone reads
    return plain.group(1), rest


def _parse_address(arg: str) -> Tuple[str, str]:
    """Split *arg* into (address, rest); a falsy address means none found."""
    if not arg:
        return '', ''
    plain = _plain_address(arg)
    if plain is not None:
        return plain
    try:
        token: Union[AngleAddr, AddrSpec]
        if arg.lstrip().startswith('<'):
            token, rest = get_angle_addr(arg)
        else:
            token, rest = get_addr_spec(arg)
        # A falsy token, returned as it is, is CPython's "no address".
        return (token.addr_spec if token else token), rest  # type: ignore[return-value]
    except Exception:
        # The email package's RFC 5322 parser (and the addr_spec of what it
        # returns) reports malformed input in many ways: HeaderParseError,
        # IndexError, AttributeError, even UnboundLocalError, varying with
        # the Python version.  All mean that no address could be read;
        # CPython let them escape and dropped the connection.
        return '', ''


def _strip_keyword(keyword: str, arg: str) -> str:
    """Return what follows *keyword* (any case) in *arg*, or '' if absent."""
    if arg[: len(keyword)].upper() != keyword:
        return ''
    return arg[len(keyword) :].strip()


def _is_size_value(value: Union[str, Literal[True]]) -> bool:
    """A SIZE value int() can read: decimal digits.  (CPython tested isdigit,
    which also takes digits such as '\u00b2' that int() refuses.)"""
    return value is not True and value.isdecimal()


def _parse_params(words: Iterable[str]) -> Optional[_Params]:
    """Turn ESMTP parameters (``KEY`` or ``KEY=VALUE``) into a dict.

    Returns None if any word breaks RFC 1869's syntax.
    """
    params: _Params = {}
    for word in words:
        key, equals, value = word.partition('=')
        if not key.isalnum() or (equals and not value):
            return None
        params[key] = value if equals else True
    return params


def _split_command(line: str) -> Tuple[str, Optional[str]]:
    """Split a command line into its upper-cased verb and its argument
    (None when no space follows the verb)."""
    verb, space, arg = line.partition(' ')
    return verb.upper(), (arg.strip() if space else None)


def _utf8(data: bytes) -> Optional[str]:
    """*data* decoded from UTF-8, or None if it is not UTF-8."""
    try:
        return str(data, 'utf-8')
    except UnicodeDecodeError:
        return None


# *dot* is Any: AnyStr cannot say "or an int, with bytes".
def _undo_transparency(text: AnyStr, linesep: AnyStr, dot: Any, newline: AnyStr) -> AnyStr:
    """Join the lines of a DATA body with *newline*, dropping the leading
    '.' that the client added to lines starting with one (RFC 5321 4.5.2).

    *dot* is '.' for text, ord('.') for bytes.  Whole-text replace()s, not
    a list of the message's lines: far less time and memory for big ones.
    """
    if isinstance(dot, int):
        dot = bytes((dot,))
    if text[:1] == dot:
        text = text[1:]
    return text.replace(linesep + dot, linesep).replace(linesep, newline)


class _MessageBuffer:
    """A message's data (bytes), un-stuffed as its pieces arrive.

    The result equals _undo_transparency() of the joined pieces (after the
    CRLF that _start_data puts in front of them), but the raw message is
    never held whole: each piece is turned into its lines with LF ends and
    written to one buffer, which getvalue() hands over without a copy.  A
    20 MiB message then costs about 20 MiB, not twice or more.
    """

    def __init__(self) -> None:
        self._text = io.BytesIO()
        self._held = b''  # a CR or CRLF that the next piece may continue
        self._skip = 1  # the LF made of the CRLF put in front

    def write(self, piece: bytes) -> None:
        if self._held:
            piece = self._held + piece
        held = 2 if piece.endswith(b'\r\n') else 1 if piece.endswith(b'\r') else 0
        if held:
            # A line end at the edge: keep it until we know whether the
            # next piece starts the line with a dot.
            self._held, piece = piece[-held:], piece[:-held]
        else:
            self._held = b''
        self._put(piece.replace(b'\r\n.', b'\r\n').replace(b'\r\n', b'\n'))

    def _put(self, text: bytes) -> None:
        if self._skip and text:
            text, self._skip = text[1:], 0
        self._text.write(text)

    def getvalue(self) -> bytes:
        self._put(self._held.replace(b'\r\n', b'\n'))
        self._held = b''
        return self._text.getvalue()


def _check_modes(enable_SMTPUTF8: bool, decode_data: bool) -> None:
    if enable_SMTPUTF8 and decode_data:
        raise ValueError(_MODES_CLASH)


def _renamed(old: str, new: str) -> property:
    """Property for *old*, an attribute renamed to *new* in Python 3.5."""

    def read(self: SMTPChannel) -> object:
        warnings.warn(
            "Access to %s attribute on SMTPChannel is deprecated, use '%s' instead" % (old, new),
            DeprecationWarning,
            2,
        )
        return getattr(self, new)

    def write(self: SMTPChannel, value: object) -> None:
        warnings.warn(
            "Setting %s attribute on SMTPChannel is deprecated, set '%s' instead" % (old, new),
            DeprecationWarning,
            2,
        )
        setattr(self, new, value)

    return property(read, write)


class SMTPChannel(asynchat.async_chat):
    """One SMTP session with a connected client."""

    COMMAND = 0
    DATA = 1

    # Instance attributes.  The public ones are typeshed's smtpd stub's, but
    # as they are: it says str for mailfrom, received_data, peer and the
    # items of received_lines.
    smtp_server: SMTPServer
    conn: socket.socket
    addr: Any
    received_lines: List[bytes]
    smtp_state: int
    seen_greeting: str
    mailfrom: Optional[str]
    rcpttos: List[str]
    received_data: Union[str, bytes]  # str if decode_data, else bytes
    fqdn: str
    peer: Any  # as from getpeername()
    data_size_limit: int
    enable_SMTPUTF8: bool
    extended_smtp: bool
    require_SMTPUTF8: bool
    num_bytes: int
    mail_options: List[str]
    rcpt_options: List[str]
    _decode_data: bool
    # The pieces of the decoded text (see __init__): str, or bytes and an int.
    _emptystring: Union[str, bytes]
    _linesep: Union[str, bytes]
    _dotsep: Union[str, int]
    _newline: Union[str, bytes]

    # Replaced in __init__ by the server's extension hooks (smtpd_compat.hooks),
    # which do nothing unless the server was given extension options.
    _hooks: _Hooks = _extension_hooks.NO_HOOKS
    # Set by those hooks, and only on a server with extensions: the TLS
    # state and AUTH identity of the session (smtpd_compat.hooks.Connection).
    connection: _extension_hooks.Connection

    command_size_limit = _COMMAND_LINE_LIMIT
    # The template for each channel's own dict (see __init__).  CPython's
    # channels all shared this one: a client's EHLO raised every client's
    # MAIL limit, and each new client cleared them all.
    command_size_limits: DefaultDict[str, int] = collections.defaultdict(
        lambda: _COMMAND_LINE_LIMIT
    )

    # The private names SMTPChannel used before Python 3.5 (class-private, so
    # they appear as _SMTPChannel__server and so on).
    __server = _renamed('__server', 'smtp_server')
    __line = _renamed('__line', 'received_lines')
    __state = _renamed('__state', 'smtp_state')
    __greeting = _renamed('__greeting', 'seen_greeting')
    __mailfrom = _renamed('__mailfrom', 'mailfrom')
    __rcpttos = _renamed('__rcpttos', 'rcpttos')
    __data = _renamed('__data', 'received_data')
    __fqdn = _renamed('__fqdn', 'fqdn')
    __peer = _renamed('__peer', 'peer')
    __conn = _renamed('__conn', 'conn')
    __addr = _renamed('__addr', 'addr')

    @property
    def max_command_size_limit(self) -> int:
        # Asked for every command line: max() with a default is slow.
        limits = self.command_size_limits
        return max(limits.values()) if limits else self.command_size_limit

    def __init__(
        self,
        server: SMTPServer,
        conn: socket.socket,
        addr: Any,
        data_size_limit: int = DATA_SIZE_DEFAULT,
        map: Optional[asyncore._MapType] = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
    ) -> None:
        # The server's extensions (smtpd_compat.hooks); none by default.
        self._hooks = getattr(server, '_hooks', _extension_hooks.NO_HOOKS)
        # Checked before the channel joins the loop's map (CPython checked
        # after, leaving a channel behind in the map).
        _check_modes(enable_SMTPUTF8, decode_data)
        asynchat.async_chat.__init__(self, conn, map=map)
        _send_without_delay(conn)
        self.smtp_server, self.conn, self.addr = server, conn, addr
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8, self._decode_data = enable_SMTPUTF8, decode_data
        # Input is kept as bytes and decoded a whole line or message at a
        # time; these are the pieces of the decoded text: str when decoding,
        # else bytes (where indexing yields ints, hence ord for the dot).
        if decode_data:
            self._emptystring, self._linesep = '', '\r\n'
            self._dotsep, self._newline = '.', NEWLINE
        else:
            self._emptystring, self._linesep = b'', b'\r\n'
            self._dotsep, self._newline = ord(b'.'), b'\n'
        self._set_rset_state()
        self.seen_greeting, self.extended_smtp = '', False
        # This connection's own limits, empty as CPython's were at each new
        # connection; a copy keeps the default of a subclass's dict.
        self.command_size_limits = self.command_size_limits.copy()
        self.command_size_limits.clear()
        self.fqdn = socket.getfqdn()
        try:
            self.peer = conn.getpeername()
        except OSError as error:
            self.close()
            # The client may already have hung up: no session, no error.
            if error.errno == errno.ENOTCONN:
                return
            raise
        self._hooks.opened(self)  # e.g. a PROXY header names the peer
        _debug('Peer:', repr(self.peer))
        self.push('220 %s %s' % (self.fqdn, __version__))

    def handle_read(self) -> None:
        if self._hooks is not _NO_HOOKS:
            self._hooks.reading(self)  # e.g. restart an idle timeout
        asynchat.async_chat.handle_read(self)

    def close(self) -> None:
        self._hooks.closed(self)
        asynchat.async_chat.close(self)

    def _set_post_data_state(self) -> None:
        """Forget the current transaction, as after a message is taken."""
        self.smtp_state = self.COMMAND
        self.mailfrom, self.rcpttos = None, []
        self.require_SMTPUTF8 = False
        self.num_bytes = 0
        self.set_terminator(_END_OF_LINE)

    def _set_rset_state(self) -> None:
        """Forget everything but the greeting."""
        self._set_post_data_state()
        self.received_data = ''
        self.received_lines = []

    # Takes a str, where async_chat.push takes bytes (as CPython's did).
    def push(self, msg: str) -> None:  # type: ignore[override]
        """Send the reply line *msg* (a str) to the client."""
        encoding = 'utf-8' if self.require_SMTPUTF8 else 'ascii'
        # Text that does not fit (an echoed command or VRFY argument, a reply
        # from process_message) is sent escaped; CPython raised and dropped
        # the connection.
        asynchat.async_chat.push(self, (msg + '\r\n').encode(encoding, 'backslashreplace'))

    def collect_incoming_data(self, data: bytes) -> None:
        if self.smtp_state == self.COMMAND:
            limit: Optional[int] = self.max_command_size_limit
        elif self.smtp_state == self.DATA:
            limit = self.data_size_limit
        else:
            limit = None
        if limit:
            # Past the limit we stop storing but still let the line end,
            # so that found_terminator can refuse it.
            if self.num_bytes > limit:
                return
            self.num_bytes += len(data)
        if self._message is not None and self.smtp_state == self.DATA:
            self._message.write(data)
        else:
            self.received_lines.append(data)

    def found_terminator(self) -> None:
        data = b''.join(self.received_lines)
        self.received_lines = []
        if self.smtp_state == self.COMMAND:
            self._run_command(data)
        elif self.smtp_state == self.DATA:
            self._end_data(data)
        else:
            self._show(data, _utf8(data))
            self.push('451 Internal confusion')
            self.num_bytes = 0

    def _show(self, data: bytes, text: Union[str, bytes, None]) -> None:
        """Print a line or message on DEBUGSTREAM, as text if decode_data."""
        if _debugging():
            shown = text if self._decode_data and text is not None else data
            _debug('Data:', repr(shown))

    def _run_command(self, data: bytes) -> None:
        # The path of every command: extension hooks are only called when a
        # server has some, and the debug line only formatted for a stream
        # that keeps it.
        size, self.num_bytes = self.num_bytes, 0
        try:
            line: Optional[str] = str(data, 'utf-8')
        except UnicodeDecodeError:
            line = None
        if _debugging():
            self._show(data, line)
        hooks = self._hooks
        if hooks is not _NO_HOOKS and hooks.intercept(self, data):  # e.g. AUTH
            return
        if not data:
            self.push('500 Error: bad syntax')
            return
        # A line cut short for being too long may end inside a character, so
        # its length is judged first, on the command read as best we can.
        command, arg = _split_command(line if line is not None else str(data, 'utf-8', 'replace'))
        if self.extended_smtp:
            limit = self.command_size_limits[command]
        else:
            limit = self.command_size_limit
        if size > limit:
            self.push('500 Error: line too long')
            return
        if line is None:
            self.push(_NOT_UTF8_COMMAND)
            return
        handler = getattr(self, 'smtp_' + command, None)
        if hooks is not _NO_HOOKS:
            handler = hooks.command_handler(self, command, handler)
        if not handler:
            self.push('500 Error: command "%s" not recognized' % command)
            return
        handler(arg)
        if self.smtp_state == self.DATA:
            self._start_data()

    def _start_data(self) -> None:
        """Let a lone '.' line right after DATA end an empty message.

        The end of the data is CRLF '.' CRLF, whose first CRLF may be the one
        that ended the DATA line (RFC 5321 4.1.1.4).  asynchat has consumed
        that one, so it goes back in front of the unread input, to be
        dropped again in _end_data.  (CPython left it out, never saw the end
        of an empty message and took the commands after it as its text.)
        """
        self.ac_in_buffer = _END_OF_LINE + self.ac_in_buffer
        self.num_bytes = -len(_END_OF_LINE)  # not the client's data
        # Un-stuff the data as it comes, unless the raw pieces are wanted:
        # for DEBUGSTREAM, for decoding, or by a subclass that collects or
        # reads received_lines itself.
        cls = type(self)
        if (
            not self._decode_data
            and not _debugging()
            and cls.collect_incoming_data is SMTPChannel.collect_incoming_data
            and cls.found_terminator is SMTPChannel.found_terminator
        ):
            self._message = _MessageBuffer()

    # The data of the message being received, when it is un-stuffed as it
    # arrives (see _start_data); else its raw pieces are in received_lines.
    _message: Optional[_MessageBuffer] = None

    def _end_data(self, data: bytes) -> None:
        message, self._message = self._message, None
        too_much = self.data_size_limit and self.num_bytes > self.data_size_limit
        if message is None:
            data = data[len(_END_OF_LINE) :]  # put back by _start_data
            text = _utf8(data) if self._decode_data and not too_much else data
            self._show(data, text)
        # Whatever the outcome, the transaction is over (RFC 5321 4.1.1.4):
        # CPython stayed in DATA after 552 and took the next commands as the
        # text of the refused message.
        if too_much:
            self._set_post_data_state()
            self.push('552 Error: Too much mail data')
        elif message is not None:
            self._take_message(message.getvalue())
        elif text is None:
            self._set_post_data_state()
            self.push(_NOT_UTF8_DATA)
        else:
            # All four are str, or all bytes (and an int): as decode_data chose.
            self._take_message(
                _undo_transparency(text, self._linesep, self._dotsep, self._newline)  # type: ignore[type-var]
            )

    def _take_message(self, data: Union[str, bytes]) -> None:
        """Hand *data*, the message as process_message receives it, over."""
        self.received_data = data
        options: Dict[str, Any] = {}
        if not self._decode_data:
            options = {'mail_options': self.mail_options, 'rcpt_options': self.rcpt_options}
        if self._hooks is not _NO_HOOKS:
            options.update(self._hooks.message_kwargs(self))
        try:
            # mailfrom is set: DATA needs a RCPT, RCPT a MAIL.
            status = self.smtp_server.process_message(
                self.peer,
                self.mailfrom,  # type: ignore[arg-type]
                self.rcpttos,
                self.received_data,
                **options,
            )
        except NotImplementedError:
            # SMTPServer's own process_message: the server has no way to take
            # mail at all.  Answer, then let the error out of handle_read, as
            # CPython's test_process_message_unimplemented expects.
            self._set_post_data_state()
            self.push(_LOCAL_ERROR)
            raise
        except Exception:
            # The client must learn that its message was not taken, and may
            # go on (CPython dropped the connection without a reply).
            status = _LOCAL_ERROR
            self._log_failure('process_message', status)
        self._set_post_data_state()
        self.push(status if status else _OK)

    def _log_failure(self, what: str, reply: str) -> None:
        """Report the exception being handled through log_info, as asyncore
        reports the errors of handlers, but keep the connection."""
        _, kind, value, frames = asyncore.compact_traceback()
        self.log_info(
            '%s raised %s: %s; replied %s; traceback: %s'
            % (what, kind.__name__, value, reply[:3], frames),
            'error',
        )

    # Helpers kept as methods because subclasses may call or replace them.

    def _strip_command_keyword(self, keyword: str, arg: str) -> str:
        return _strip_keyword(keyword, arg)

    def _getaddr(self, arg: str) -> Tuple[str, str]:
        return _parse_address(arg)

    def _getparams(self, params: Iterable[str]) -> Optional[_Params]:
        return _parse_params(params)

    def _syntax(self, command: str) -> str:
        text = 'Syntax: ' + _SYNTAX[command]
        if self.extended_smtp and command in ('MAIL', 'RCPT'):
            text += _MAIL_PARAMETERS
        return text

    # One method per SMTP command; *arg* is None when nothing follows it
    # (typed str, as in typeshed's stub, which subclasses are checked against).

    def smtp_HELO(self, arg: str) -> None:
        if not arg:
            self.push('501 ' + self._syntax('HELO'))
        elif self.seen_greeting:
            # A second greeting is refused rather than treated as RSET
            # (see bpo-21783).
            self.push(_DUPLICATE_GREETING)
        else:
            self._set_rset_state()
            self.seen_greeting = arg
            self.push('250 %s' % self.fqdn)

    def smtp_EHLO(self, arg: str) -> None:
        """Greet the client and list the ESMTP extensions on offer."""
        if not arg:
            self.push('501 ' + self._syntax('EHLO'))
            return
        if self.seen_greeting:
            self.push(_DUPLICATE_GREETING)
            return
        self._set_rset_state()
        self.seen_greeting, self.extended_smtp = arg, True
        # (offered?, EHLO keyword, room its MAIL parameter needs on the line)
        extensions = (
            (self.data_size_limit, 'SIZE %s' % self.data_size_limit, 26),
            (not self._decode_data, '8BITMIME', 0),
            (self.enable_SMTPUTF8, 'SMTPUTF8', 10),
        )
        self.push('250-%s' % self.fqdn)
        for offered, keyword, room in extensions:
            if offered:
                self.push('250-' + keyword)
                if room:
                    self.command_size_limits['MAIL'] += room
        for keyword in self._hooks.ehlo_keywords(self):
            self.push('250-' + keyword)
        self.push('250 HELP')

    def smtp_NOOP(self, arg: str) -> None:
        self.push(('501 ' + self._syntax('NOOP')) if arg else _OK)

    def smtp_QUIT(self, arg: str) -> None:
        self.push('221 Bye')
        self.close_when_done()
        # Nothing sent after QUIT may run (CPython went on with commands
        # pipelined behind it, DATA included).  Without a terminator the
        # rest only reaches collect_incoming_data, whose command-line limit
        # keeps it from piling up.
        self.set_terminator(None)

    def smtp_HELP(self, arg: str) -> None:
        if not arg:
            self.push('250 ' + _SUPPORTED)
        elif arg.upper() in _SYNTAX:
            self.push('250 ' + self._syntax(arg.upper()))
        else:
            self.push('501 ' + _SUPPORTED)

    def smtp_VRFY(self, arg: str) -> None:
        if not arg:
            self.push('501 ' + self._syntax('VRFY'))
        elif self._getaddr(arg)[0]:
            self.push('252 Cannot VRFY user, but will accept message and attempt delivery')
        else:
            self.push('502 Could not VRFY %s' % arg)

    def smtp_EXPN(self, arg: str) -> None:
        self.push('502 EXPN not implemented')

    def smtp_MAIL(self, arg: str) -> None:
        if not self.seen_greeting:
            self.push(_NEED_HELO)
            return
        _debug('===> MAIL', arg)
        if arg is None:
            self.push('501 ' + self._syntax('MAIL'))
            return
        address, rest = self._getaddr(self._strip_command_keyword('FROM:', arg))
        if not address or (rest and not self.extended_smtp):
            self.push('501 ' + self._syntax('MAIL'))
            return
        if self.mailfrom:
            self.push('503 Error: nested MAIL command')
            return
        options = rest.upper().split() if rest else []
        params = self._getparams(options)
        if params is None:
            self.push('501 ' + self._syntax('MAIL'))
            return
        smtputf8 = self.enable_SMTPUTF8 and params.get('SMTPUTF8') is True
        reply = self._check_mail_params(params) if params else None
        if reply:
            self.push(reply)
            return
        # Only an accepted MAIL sets these (CPython set them before checking
        # the parameters, so a refused MAIL left them behind).
        self.mail_options, self.require_SMTPUTF8 = options, smtputf8
        self.mailfrom = address
        _debug('sender:', self.mailfrom)
        self.push(_OK)

    def _check_mail_params(self, params: _Params) -> Optional[str]:
        """Consume the MAIL parameters we know; return an error reply or None.

        Checked in CPython's order, which decides the reply when several
        parameters are wrong.
        """
        if not self._decode_data:
            if params.pop('BODY', '7BIT') not in ('7BIT', '8BITMIME'):
                return '501 Error: BODY can only be one of 7BIT, 8BITMIME'
        if self.enable_SMTPUTF8:
            smtputf8 = params.pop('SMTPUTF8', False)
            if smtputf8 is not True and smtputf8 is not False:
                return '501 Error: SMTPUTF8 takes no arguments'
        size = params.pop('SIZE', None)
        if size is not None:
            if not _is_size_value(size):
                return '501 ' + self._syntax('MAIL')
            if self.data_size_limit and int(size) > self.data_size_limit:
                return '552 Error: message size exceeds fixed maximum message size'
        if params:
            return '555 MAIL FROM parameters not recognized or not implemented'
        return None

    def smtp_RCPT(self, arg: str) -> None:
        if not self.seen_greeting:
            self.push(_NEED_HELO)
            return
        _debug('===> RCPT', arg)
        if not self.mailfrom:
            self.push('503 Error: need MAIL command')
            return
        if arg is None:
            self.push('501 ' + self._syntax('RCPT'))
            return
        address, rest = self._getaddr(self._strip_command_keyword('TO:', arg))
        if not address or (rest and not self.extended_smtp):
            self.push('501 ' + self._syntax('RCPT'))
            return
        options = rest.upper().split() if rest else []
        params = self._getparams(options)
        if params is None:
            self.push('501 ' + self._syntax('RCPT'))
        elif params:
            # No RCPT parameter is supported.
            self.push('555 RCPT TO parameters not recognized or not implemented')
        else:
            # Only an accepted RCPT sets them (as for MAIL's).
            self.rcpt_options = options
            self.rcpttos.append(address)
            _debug('recips:', self.rcpttos)
            self.push(_OK)

    def smtp_RSET(self, arg: str) -> None:
        if arg:
            self.push('501 ' + self._syntax('RSET'))
        else:
            self._set_rset_state()
            self.push(_OK)

    def smtp_DATA(self, arg: str) -> None:
        if not self.seen_greeting:
            self.push(_NEED_HELO)
        elif not self.rcpttos:
            self.push('503 Error: need RCPT command')
        elif arg:
            self.push('501 ' + self._syntax('DATA'))
        else:
            self.smtp_state = self.DATA
            self.set_terminator(_END_OF_DATA)
            self.push('354 End data with <CR><LF>.<CR><LF>')


class SMTPServer(asyncore.dispatcher):
    """Listens on *localaddr* and gives each client a ``channel_class``.

    Subclasses implement ``process_message()``; *remoteaddr* is only
    remembered, for servers that forward mail.
    """

    channel_class: Type[SMTPChannel] = SMTPChannel
    _hooks: _Hooks = _extension_hooks.NO_HOOKS
    data_size_limit: int
    enable_SMTPUTF8: bool

    def __init__(
        self,
        localaddr: _ListenAddress,
        remoteaddr: Optional[_Address],
        data_size_limit: int = DATA_SIZE_DEFAULT,
        map: Optional[asyncore._MapType] = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        *,
        timeout: Optional[float] = None,
        max_connections: Optional[int] = None,
        starttls_context: Optional[ssl.SSLContext] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        require_starttls: bool = False,
        authenticator: Optional[_Authenticator] = None,
        auth_required: bool = False,
        auth_require_tls: bool = True,
        proxy_protocol: bool = False,
    ) -> None:
        self._localaddr, self._remoteaddr = localaddr, remoteaddr
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8, self._decode_data = enable_SMTPUTF8, decode_data
        _check_modes(enable_SMTPUTF8, decode_data)
        asyncore.dispatcher.__init__(self, map=map)
        try:
            # Host and port only: an IPv6 address may also carry flowinfo
            # and scope_id, which CPython passed on as getaddrinfo's family
            # and type (a TypeError).
            found = socket.getaddrinfo(localaddr[0], localaddr[1], type=socket.SOCK_STREAM)
            family, kind = found[0][:2]
            self.create_socket(family, kind)
            self.set_reuse_addr()  # so a restarted server can rebind at once
            self.bind(localaddr)
            self.listen(_LISTEN_BACKLOG)
            # Our extensions, all off by default: README.rst "Extensions".
            self._hooks = _extension_hooks.build(
                self,
                timeout=timeout,
                max_connections=max_connections,
                starttls_context=starttls_context,
                ssl_context=ssl_context,
                require_starttls=require_starttls,
                authenticator=authenticator,
                auth_required=auth_required,
                auth_require_tls=auth_require_tls,
                proxy_protocol=proxy_protocol,
            )
        except BaseException:
            self.close()  # don't leave a half-made dispatcher in the map
            raise
        _debug(
            '%s started at %s\n\tLocal addr: %s\n\tRemote addr:%s'
            % (self.__class__.__name__, time.ctime(time.time()), localaddr, remoteaddr)
        )

    def handle_accepted(self, conn: socket.socket, addr: Any) -> None:
        _debug('Incoming connection from %s' % repr(addr))
        # Extensions may refuse the connection or run a PROXY header or TLS
        # handshake first; then, or at once, _start_session.
        self._hooks.accepted(self, conn, addr)

    def _start_session(self, conn: socket.socket, addr: Any) -> None:
        # Positional, as CPython passes them: subclasses may rename them.
        self.channel_class(
            self,
            conn,
            addr,
            self.data_size_limit,
            self._map,
            self.enable_SMTPUTF8,
            self._decode_data,
        )

    def close(self) -> None:
        asyncore.dispatcher.close(self)
        self._hooks.server_closed(self)

    def process_message(
        self,
        peer: _Address,
        mailfrom: str,
        rcpttos: List[str],
        data: Union[bytes, str],
        **kwargs: Any,
    ) -> Optional[str]:
        """Handle one message; subclasses must override this.

        peer      the client's address, as from getpeername()
        mailfrom  the envelope sender given with MAIL FROM
        rcpttos   the list of envelope recipients given with RCPT TO
        data      the message text (str if decode_data, else bytes), lines
                  joined with a bare newline and leading dots un-doubled
        kwargs    when not decode_data: mail_options and rcpt_options, the
                  upper-cased MAIL and (last) RCPT parameters, e.g.
                  ['BODY=8BITMIME', 'SMTPUTF8']

        Return None to send '250 OK', or the full reply line to send.
        """
        raise NotImplementedError


class DebuggingServer(SMTPServer):
    """Prints each message on stdout, with an X-Peer header added."""

    def _print_message_content(self, peer: _Address, data: Union[bytes, str]) -> None:
        as_bytes = not isinstance(data, str)
        in_headers = True
        for line in data.splitlines():
            if in_headers and not line:
                # The blank line ending the headers: add X-Peer before it.
                header = 'X-Peer: ' + peer[0]
                print(repr(header.encode('utf-8')) if as_bytes else header)
                in_headers = False
            print(repr(line) if as_bytes else line)

    # Typed as SMTPServer's, whose subclasses may return a reply; this one
    # falls off the end, returning None ('250 OK') as CPython's did.
    def process_message(  # type: ignore[return]
        self,
        peer: _Address,
        mailfrom: str,
        rcpttos: List[str],
        data: Union[bytes, str],
        **kwargs: Any,
    ) -> Optional[str]:
        print('---------- MESSAGE FOLLOWS ----------')
        # Only bytes-mode channels pass options; empty lists are not shown.
        for key, template in (
            ('mail_options', 'mail options: %s'),
            ('rcpt_options', 'rcpt options: %s\n'),
        ):
            if kwargs.get(key):
                print(template % kwargs[key])
        self._print_message_content(peer, data)
        print('------------ END MESSAGE ------------')


class PureProxy(SMTPServer):
    """Forwards each message to the SMTP server at *remoteaddr*.

    Relays with smtplib, which blocks the loop until the relay has answered.
    The client's message is answered with the relay's verdict: 250 if any
    recipient took it, else the relay's refusal (451 if it could not be
    reached).
    """

    # Seconds to wait for each answer of the relay (None: for ever, as
    # CPython did).  The loop waits with it: a relay that accepted the
    # connection and then said nothing stopped every session for good.
    relay_timeout: Optional[float] = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get('enable_SMTPUTF8'):
            raise ValueError("PureProxy does not support SMTPUTF8.")
        super().__init__(*args, **kwargs)

    def process_message(
        self,
        peer: _Address,
        mailfrom: str,
        rcpttos: List[str],
        data: Union[bytes, str],
        **kwargs: Any,
    ) -> Optional[str]:
        # kwargs: the mail and rcpt options a bytes-mode channel passes
        # (CPython's PureProxy took none, so it failed on every message
        # unless decode_data was set).
        if isinstance(data, str):
            data = data.encode('utf-8')
        lines = data.split(b'\n')
        # X-Peer goes last among the headers: before the first blank line.
        end = next((i for i, line in enumerate(lines) if not line), len(lines))
        lines.insert(end, b'X-Peer: ' + peer[0].encode('ascii'))
        # CRLF line ends: smtplib passes bytes on as they are, and a bare LF
        # is not allowed in SMTP data (RFC 5321 2.3.8).
        refused = self._deliver(mailfrom, rcpttos, b'\r\n'.join(lines))
        _debug('we got some refusals:', refused)
        return _relay_reply(refused, rcpttos)

    def _deliver(self, mailfrom: str, rcpttos: List[str], data: bytes) -> _Refusals:
        """Send the message on; return {recipient: (code, reply)} refused."""
        import smtplib

        # The replies are bytes from smtplib, or the placeholder str below.
        refused: Dict[str, Tuple[int, Any]] = {}
        try:
            timeout = self.relay_timeout
            relay = smtplib.SMTP() if timeout is None else smtplib.SMTP(timeout=timeout)
            remote = self._remoteaddr
            if remote is None:  # nowhere to relay to: as if unreachable
                raise OSError('PureProxy was given no remote address')
            relay.connect(remote[0], remote[1])
            try:
                refused = relay.sendmail(mailfrom, rcpttos, data)
            finally:
                _hang_up(relay)
        except smtplib.SMTPRecipientsRefused as e:
            _debug('got SMTPRecipientsRefused')
            refused = e.recipients
        except (OSError, smtplib.SMTPException) as e:
            _debug('got', e.__class__)
            # Count every recipient as refused, with the server's code and
            # reply when the error carries them, else placeholders.
            failure = (getattr(e, 'smtp_code', -1), getattr(e, 'smtp_error', 'ignore'))
            refused.update(dict.fromkeys(rcpttos, failure))
        return refused


def _hang_up(relay: smtplib.SMTP) -> None:
    """Say QUIT to the relay, or just close if that fails: what the relay
    accepted stays accepted (CPython counted a failed QUIT as a refusal of
    every recipient)."""
    try:
        relay.quit()
    except OSError:  # smtplib.SMTPException included
        relay.close()


def _relay_reply(refused: _Refusals, rcpttos: Sequence[str]) -> Optional[str]:
    """PureProxy's reply for a message the relay *refused* for some
    recipients: None (250 OK) if any recipient took it, else the relay's own
    reply, a temporary one in preference, so that the client tries again;
    451 if the relay gave none (it could not be reached)."""
    if any(rcpt not in refused for rcpt in rcpttos):
        return None
    failures = [refused[rcpt] for rcpt in rcpttos]
    for first_digit in (4, 5):
        for code, text in failures:
            if code // 100 == first_digit:
                if isinstance(text, bytes):
                    text = text.decode('utf-8', 'replace')
                # smtplib joins the lines of a multi-line reply with LF.
                return '%d %s' % (code, ' '.join(text.splitlines()))
    return _RELAY_FAILED


# --- command line ------------------------------------------------------------

# (letter, long name, value name or None, explanation), in --help's order.
# The help text and getopt's option lists are both made from this table.
_OPTIONS: Tuple[Tuple[str, str, Optional[str], str], ...] = (
    (
        'n',
        'nosetuid',
        None,
        (
            "This program generally tries to setuid `nobody', unless this flag is "
            "set.  The setuid call will fail if this program is not run as root "
            "(in which case, use this flag)."
        ),
    ),
    ('V', 'version', None, "Print the version number and exit."),
    (
        'c',
        'class',
        'classname',
        "Use `classname' as the concrete SMTP proxy class.  Uses `PureProxy' by default.",
    ),
    (
        's',
        'size',
        'limit',
        (
            'Restrict the total size of the incoming message to "limit" number of '
            'bytes via the RFC 1870 SIZE extension.  Defaults to 33554432 bytes.'
        ),
    ),
    ('u', 'smtputf8', None, "Enable the SMTPUTF8 extension and behave as an RFC 6531 smtp proxy."),
    ('d', 'debug', None, "Turn on debugging prints."),
    ('h', 'help', None, "Print this message and exit."),
)

_DEFAULTS_NOTE = (
    "If localhost is not given then `localhost' is used, and if localport is "
    "not given then 8025 is used.  If remotehost is not given then "
    "`localhost' is used, and if remoteport is not given, then 25 is used."
)


def _help_text() -> str:
    """The --help text, laid out as CPython's smtpd laid out its own."""
    parts = [
        'An RFC 5321 smtp proxy with optional RFC 1870 and RFC 6531 extensions.',
        'Usage: %s [options] [localhost:localport [remotehost:remoteport]]' % program,
        'Options:',
    ]
    indent = ' ' * 8
    for letter, name, value_name, explanation in _OPTIONS:
        value = ' ' + value_name if value_name else ''
        parts.append(
            '    --%s%s\n    -%s%s\n%s'
            % (
                name,
                value,
                letter,
                value,
                textwrap.fill(explanation, 79, initial_indent=indent, subsequent_indent=indent),
            )
        )
    parts.append('Version: %s' % __version__)
    parts.append(textwrap.fill(_DEFAULTS_NOTE, 79))
    return '\n\n'.join(parts) + '\n'


def usage(code: int, msg: object = '') -> NoReturn:
    """Print the help text (and *msg*, if any) on stderr; exit with *code*."""
    print(_help_text(), file=sys.stderr)
    if msg:
        print(msg, file=sys.stderr)
    sys.exit(code)


class Options:
    """The command line's settings, as parseargs() returns them."""

    setuid = True
    classname = 'PureProxy'
    # The default that --help states (CPython's was None: no limit at all).
    size_limit = DATA_SIZE_DEFAULT
    enable_SMTPUTF8 = False
    # Set by parseargs(), from its positional arguments.
    localhost: str
    localport: int
    remotehost: str
    remoteport: int


def _getopt_specs() -> Tuple[str, List[str]]:
    """getopt's short-option string and long-option list, from _OPTIONS."""
    short, longs = '', []
    for letter, name, value_name, _ in _OPTIONS:
        short += letter + (':' if value_name else '')
        longs.append(name + ('=' if value_name else ''))
    return short, longs


def _option_letters() -> Dict[str, str]:
    """Map each spelling of an option ('-n', '--nosetuid') to its letter."""
    letters = {}
    for letter, name, _, _ in _OPTIONS:
        letters['-' + letter] = letters['--' + name] = letter
    return letters


def _size_option(text: str) -> int:
    """The --size limit: bytes, 0 for none (RFC 1870's "SIZE 0")."""
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:  # CPython took a negative limit and refused every message
        print('Invalid size: ' + text, file=sys.stderr)
        sys.exit(1)
    return size


def _address_option(spec: str, which: str) -> Tuple[str, int]:
    """Split 'host:port' or '[IPv6 address]:port' into (host, int port), or
    exit with usage."""
    if spec.startswith('['):
        host, separator, port = spec[1:].partition(']:')
    else:
        host, separator, port = spec.partition(':')
    if not separator:
        usage(1, 'Bad %s spec: %s' % (which, spec))
    try:
        return host, int(port)
    except ValueError:
        usage(1, 'Bad %s port: %s' % (which, spec))


def parseargs() -> Options:
    """Read sys.argv into an Options instance, exiting on --help, --version
    or bad input.  --debug points DEBUGSTREAM at stderr."""
    global DEBUGSTREAM
    short, longs = _getopt_specs()
    try:
        given, args = getopt.getopt(sys.argv[1:], short, longs)
    except getopt.GetoptError as e:
        usage(1, e)
    letters = _option_letters()
    options = Options()
    # Acted on in the order given: "-s x -h" fails on the size, "-h -s x"
    # prints help.
    for option, value in given:
        letter = letters[option]
        if letter == 'h':
            usage(0)
        elif letter == 'V':
            print(__version__)
            sys.exit(0)
        elif letter == 'd':
            DEBUGSTREAM = sys.stderr
        elif letter == 's':
            options.size_limit = _size_option(value)
        elif letter == 'c':
            options.classname = value
        elif letter == 'n':
            options.setuid = False
        elif letter == 'u':
            options.enable_SMTPUTF8 = True
    if len(args) > 2:
        usage(1, 'Invalid arguments: %s' % COMMASPACE.join(args))
    local = args[0] if args else 'localhost:8025'
    remote = args[1] if len(args) > 1 else 'localhost:25'
    options.localhost, options.localport = _address_option(local, 'local')
    options.remotehost, options.remoteport = _address_option(remote, 'remote')
    return options
