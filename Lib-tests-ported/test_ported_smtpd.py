"""pytest port of CPython 3.11's Lib/test/test_smtpd.py.

Every test here drives an ``SMTPChannel`` over a ``ScriptedSocket``: a line is
queued on the fake socket, ``handle_read()`` consumes it, and the reply the
channel sent is compared byte for byte.  CASES.rst maps each original test
to the function that ports it.
"""

import io
import socket

import pytest

from ported_support import (
    IPV6_ENABLED,
    LOOPBACK_V4,
    LOOPBACK_V6,
    FakeSocketModule,
    expected_public_names,
    load_implementation,
)

smtpd, asyncore, asynchat = load_implementation()


OK = b"250 OK\r\n"
DUPLICATE_GREETING = b"503 Duplicate HELO/EHLO\r\n"
SEND_HELO_FIRST = b"503 Error: send HELO first\r\n"
LINE_TOO_LONG = b"500 Error: line too long\r\n"
TOO_MUCH_DATA = b"552 Error: Too much mail data\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
MAIL_SYNTAX = b"501 Syntax: MAIL FROM: <address>\r\n"
MAIL_SYNTAX_EXTENDED = b"501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]\r\n"
RCPT_SYNTAX = b"501 Syntax: RCPT TO: <address>\r\n"
RCPT_SYNTAX_EXTENDED = b"501 Syntax: RCPT TO: <address> [SP <mail-parameters>]\r\n"
MAIL_PARAMS_REFUSED = b"555 MAIL FROM parameters not recognized or not implemented\r\n"
RCPT_PARAMS_REFUSED = b"555 RCPT TO parameters not recognized or not implemented\r\n"
COMMAND_LIST = b"Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY\r\n"
PEER = ("peer-address", "peer-port")

# An envelope up to (and including) the DATA command, used by many dialogs.
ENVELOPE_AFTER_HELO = (
    b"HELO example",
    b"MAIL From:eggs@example",
    b"RCPT To:spam@example",
    b"DATA",
)


class RecordingServer(smtpd.SMTPServer):
    """An SMTPServer that records each message handed to process_message.

    Its reply is '250 Okish' for a body equal to 'return status' and
    '250 SMTPUTF8 message okish' when the MAIL command asked for SMTPUTF8;
    otherwise it returns None, so the channel answers '250 OK'.
    """

    def __init__(self, localaddr, remoteaddr, **options):
        super().__init__(localaddr, remoteaddr, **options)
        self.received = []
        marker = "return status"
        self.status_marker = marker if options.get("decode_data") else marker.encode()

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.received.append((peer, mailfrom, rcpttos, data))
        if data == self.status_marker:
            return "250 Okish"
        if "SMTPUTF8" in kwargs.get("mail_options", ()):
            return "250 SMTPUTF8 message okish"
        return None


class ListenFailed(Exception):
    """Raised by ServerThatCannotListen in place of binding a listener."""


class ServerThatCannotListen(RecordingServer):
    def listen(self, *args):
        raise ListenFailed("listen() refused on purpose")


class Session:
    """A server, one SMTPChannel accepted by it, and the channel's fake socket."""

    def __init__(self, server, channel):
        self.server = server
        self.channel = channel

    def say(self, *lines):
        """Deliver each line to the channel as one read event."""
        for line in lines:
            self.channel.socket.feed(line)
            self.channel.handle_read()

    @property
    def reply(self):
        return self.channel.socket.last_sent


@pytest.fixture(autouse=True)
def fake_socket_module(monkeypatch):
    asyncore.close_all(ignore_all=True)  # nothing left over from other tests
    fake = FakeSocketModule()
    monkeypatch.setattr(smtpd, "socket", fake)
    monkeypatch.setattr(asyncore, "socket", fake)
    monkeypatch.setattr(smtpd, "DEBUGSTREAM", io.StringIO())
    yield fake
    asyncore.close_all()


@pytest.fixture
def open_session():
    """Factory: start a server on (host, 0), accept once, wrap it in a channel.

    Keyword options (decode_data, enable_SMTPUTF8) go to both the server and
    the channel, as the original tests always pass the same ones to both.
    """

    def start(host=LOOPBACK_V4, server_class=RecordingServer, data_size_limit=None, **options):
        server = server_class((host, 0), ("b", 0), **options)
        conn, addr = server.accept()
        positional = () if data_size_limit is None else (data_size_limit,)
        channel = smtpd.SMTPChannel(server, conn, addr, *positional, **options)
        return Session(server, channel)

    return start


# ---------------------------------------------------------------------------
# SMTPDServerTest
# ---------------------------------------------------------------------------


def test_base_server_process_message_is_not_implemented(open_session):
    session = open_session(server_class=smtpd.SMTPServer, decode_data=True)
    session.say(b"HELO example", b"MAIL From:eggs@example", b"RCPT To:spam@example", b"DATA")
    with pytest.raises(NotImplementedError):
        session.say(b"spam\r\n.\r\n")


def test_server_rejects_decode_data_together_with_smtputf8():
    with pytest.raises(ValueError):
        smtpd.SMTPServer((LOOPBACK_V4, 0), ("b", 0), enable_SMTPUTF8=True, decode_data=True)


# ---------------------------------------------------------------------------
# DebuggingServerTest
# ---------------------------------------------------------------------------


def _debugging_transcript(session, body, smtputf8=False):
    mail = b"MAIL From:eggs@example"
    if smtputf8:
        mail += b" BODY=8BITMIME SMTPUTF8"
    session.say(b"EHLO example", mail, b"RCPT To:spam@example", b"DATA", body, b".")


def _printed_message(*lines):
    framed = ["---------- MESSAGE FOLLOWS ----------"]
    framed.extend(lines)
    framed.append("------------ END MESSAGE ------------")
    return "".join(line + "\n" for line in framed)


def test_debugging_server_prints_decoded_message(open_session, capsys):
    session = open_session(server_class=smtpd.DebuggingServer, decode_data=True)
    _debugging_transcript(session, b"From: test\n\nhello\n")
    assert capsys.readouterr().out == _printed_message(
        "From: test", "X-Peer: peer-address", "", "hello"
    )


def test_debugging_server_prints_raw_bytes_lines_by_default(open_session, capsys):
    session = open_session(server_class=smtpd.DebuggingServer)
    _debugging_transcript(session, b"From: test\n\nh\xc3\xa9llo\xff\n")
    assert capsys.readouterr().out == _printed_message(
        "b'From: test'", "b'X-Peer: peer-address'", "b''", r"b'h\xc3\xa9llo\xff'"
    )


def test_debugging_server_with_smtputf8_enabled_prints_bytes(open_session, capsys):
    session = open_session(server_class=smtpd.DebuggingServer, enable_SMTPUTF8=True)
    _debugging_transcript(session, b"From: test\n\nh\xc3\xa9llo\xff\n")
    assert capsys.readouterr().out == _printed_message(
        "b'From: test'", "b'X-Peer: peer-address'", "b''", r"b'h\xc3\xa9llo\xff'"
    )


def test_debugging_server_prints_mail_options_of_smtputf8_message(open_session, capsys):
    session = open_session(server_class=smtpd.DebuggingServer, enable_SMTPUTF8=True)
    _debugging_transcript(session, b"From: test\n\nh\xc3\xa9llo\xff\n", smtputf8=True)
    assert capsys.readouterr().out == _printed_message(
        "mail options: ['BODY=8BITMIME', 'SMTPUTF8']",
        "b'From: test'",
        "b'X-Peer: peer-address'",
        "b''",
        r"b'h\xc3\xa9llo\xff'",
    )


# ---------------------------------------------------------------------------
# TestFamilyDetection
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not IPV6_ENABLED, reason="IPv6 not enabled on this host")
def test_server_on_ipv6_address_uses_af_inet6_socket():
    server = smtpd.SMTPServer((LOOPBACK_V6, 0), (LOOPBACK_V4, 0))
    assert server.socket.family == socket.AF_INET6


def test_server_on_ipv4_address_uses_af_inet_socket():
    server = smtpd.SMTPServer((LOOPBACK_V4, 0), (LOOPBACK_V6, 0))
    assert server.socket.family == socket.AF_INET


# ---------------------------------------------------------------------------
# TestRcptOptionParsing
# ---------------------------------------------------------------------------


def test_rcpt_with_unknown_parameter_is_refused_with_555(open_session):
    session = open_session()
    session.say(
        b"EHLO example",
        b"MAIL from: <foo@example.com> size=20",
        b"RCPT to: <foo@example.com> foo=bar",
    )
    assert session.reply == RCPT_PARAMS_REFUSED


def test_rcpt_without_parameters_is_accepted(open_session):
    session = open_session()
    session.say(
        b"EHLO example", b"MAIL from: <foo@example.com> size=20", b"RCPT to: <foo@example.com>"
    )
    assert session.reply == OK


# ---------------------------------------------------------------------------
# TestMailOptionParsing
# ---------------------------------------------------------------------------


def test_decode_data_channel_refuses_smtputf8_and_body_parameters(open_session):
    session = open_session(decode_data=True)
    session.say(b"EHLO example")
    refused = [
        b"MAIL from: <foo@example.com> size=20 SMTPUTF8",
        b"MAIL from: <foo@example.com> size=20 SMTPUTF8 BODY=8BITMIME",
        b"MAIL from: <foo@example.com> size=20 BODY=UNKNOWN",
        b"MAIL from: <foo@example.com> size=20 body=8bitmime",
    ]
    for command in refused:
        session.say(command)
        assert session.reply == MAIL_PARAMS_REFUSED, command
    session.say(b"MAIL from: <foo@example.com> size=20")
    assert session.reply == OK


def test_bytes_channel_accepts_body_but_not_smtputf8(open_session):
    session = open_session()
    session.say(b"EHLO example")
    for command in (
        b"MAIL from: <foo@example.com> size=20 SMTPUTF8",
        b"MAIL from: <foo@example.com> size=20 SMTPUTF8 BODY=8BITMIME",
    ):
        session.say(command)
        assert session.reply == MAIL_PARAMS_REFUSED, command
    session.say(b"MAIL from: <foo@example.com> size=20 SMTPUTF8 BODY=UNKNOWN")
    assert session.reply == b"501 Error: BODY can only be one of 7BIT, 8BITMIME\r\n"
    session.say(b"MAIL from: <foo@example.com> size=20 body=8bitmime")
    assert session.reply == OK


def test_smtputf8_channel_accepts_lowercase_body_and_smtputf8(open_session):
    session = open_session(enable_SMTPUTF8=True)
    session.say(b"EHLO example", b"MAIL from: <foo@example.com> size=20 body=8bitmime smtputf8")
    assert session.reply == OK


# ---------------------------------------------------------------------------
# SMTPDChannelTest, and SMTPDChannelIPv6Test which reruns it on ::1
# ---------------------------------------------------------------------------


@pytest.fixture(params=["ipv4", "ipv6"])
def session(request, open_session):
    """A decode_data=True channel whose server was set up on IPv4 or IPv6 loopback."""
    if request.param == "ipv6":
        if not IPV6_ENABLED:
            pytest.skip("IPv6 not enabled on this host")
        return open_session(LOOPBACK_V6, decode_data=True)
    return open_session(LOOPBACK_V4, decode_data=True)


def test_server_whose_listen_fails_propagates_the_error(session):
    with pytest.raises(ListenFailed):
        ServerThatCannotListen((LOOPBACK_V4, 0), ("b", 0), decode_data=True)


def test_channel_rejects_decode_data_together_with_smtputf8(session):
    channel = session.channel
    with pytest.raises(ValueError):
        smtpd.SMTPChannel(
            session.server, channel.conn, channel.addr, enable_SMTPUTF8=True, decode_data=True
        )


def test_server_handle_accept_runs_without_error(session):
    session.server.handle_accept()


def test_empty_command_line_is_bad_syntax(session):
    session.say(b"")
    assert session.reply == b"500 Error: bad syntax\r\n"


def test_ehlo_replies_250_help(session):
    session.say(b"EHLO example")
    assert session.reply == b"250 HELP\r\n"


def test_ehlo_without_hostname_is_rejected(session):
    session.say(b"EHLO")
    assert session.reply == b"501 Syntax: EHLO hostname\r\n"


def test_second_ehlo_is_a_duplicate(session):
    session.say(b"EHLO example", b"EHLO example")
    assert session.reply == DUPLICATE_GREETING


def test_helo_after_ehlo_is_a_duplicate(session):
    session.say(b"EHLO example", b"HELO example")
    assert session.reply == DUPLICATE_GREETING


def test_helo_replies_250_with_the_fqdn(session, fake_socket_module):
    fqdn = fake_socket_module.getfqdn()
    session.say(b"HELO example")
    assert session.reply == ("250 %s\r\n" % fqdn).encode("ascii")


def test_ehlo_after_helo_is_a_duplicate(session):
    session.say(b"HELO example", b"EHLO example")
    assert session.reply == DUPLICATE_GREETING


def test_help_lists_supported_commands(session):
    session.say(b"HELP")
    assert session.reply == b"250 " + COMMAND_LIST


def test_help_for_mail_shows_its_syntax(session):
    session.say(b"HELP MAIL")
    assert session.reply == b"250 Syntax: MAIL FROM: <address>\r\n"


def test_help_for_unknown_topic_is_501_with_command_list(session):
    session.say(b"HELP SPAM")
    assert session.reply == b"501 " + COMMAND_LIST


def test_helo_without_hostname_is_rejected(session):
    session.say(b"HELO")
    assert session.reply == b"501 Syntax: HELO hostname\r\n"


def test_second_helo_is_a_duplicate(session):
    session.say(b"HELO example", b"HELO example")
    assert session.reply == DUPLICATE_GREETING


def test_mail_parameters_after_helo_are_a_syntax_error(session):
    session.say(b"HELO example", b"MAIL from:<foo@example.com> SIZE=1234")
    assert session.reply == MAIL_SYNTAX


def test_mail_from_allows_spaces_after_colon(session):
    session.say(b"HELO example", b"MAIL from:   <foo@example.com>")
    assert session.reply == OK


def test_extended_mail_from_allows_spaces_after_colon(session):
    session.say(b"EHLO example", b"MAIL from:   <foo@example.com> size=20")
    assert session.reply == OK


def test_noop_replies_ok(session):
    session.say(b"NOOP")
    assert session.reply == OK


def test_noop_after_helo_replies_ok(session):
    session.say(b"HELO example", b"NOOP")
    assert session.reply == OK


def test_noop_with_argument_is_rejected(session):
    session.say(b"NOOP hi")
    assert session.reply == b"501 Syntax: NOOP\r\n"


def test_quit_replies_bye(session):
    session.say(b"QUIT")
    assert session.reply == b"221 Bye\r\n"


def test_quit_after_helo_replies_bye(session):
    session.say(b"HELO example", b"QUIT")
    assert session.reply == b"221 Bye\r\n"


def test_quit_ignores_its_argument(session):
    session.say(b"QUIT bye bye")
    assert session.reply == b"221 Bye\r\n"


def test_unknown_channel_state_reports_internal_confusion(session):
    session.channel.smtp_state = "BAD STATE"
    session.say(b"HELO example")
    assert session.reply == b"451 Internal confusion\r\n"


def test_command_longer_than_the_limit_is_rejected(session):
    limit = session.channel.command_size_limit
    session.say(b"HELO example", b"MAIL from: " + b"a" * limit + b"@example")
    assert session.reply == LINE_TOO_LONG


def test_size_parameter_extends_the_mail_command_length_limit(session):
    session.say(b"EHLO example")
    filler = session.channel.command_size_limit - len("MAIL from:<@example>")
    session.say(b"MAIL from:<" + b"a" * filler + b"@example> SIZE=1234")
    assert session.reply == OK
    # 26 more characters are one too many even with the SIZE allowance.
    session.say(b"MAIL from:<" + b"a" * (filler + 26) + b"@example> SIZE=1234")
    assert session.reply == LINE_TOO_LONG


def test_mail_with_smtputf8_is_rejected_unless_enabled(session):
    session.say(b"EHLO example", b"MAIL from: <naive@example.com> BODY=8BITMIME SMTPUTF8")
    assert session.reply[:1] == b"5"


def test_data_over_the_size_limit_is_refused_with_552(session):
    # A small limit keeps the message short.
    session.channel.data_size_limit = 1048
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(b"A" * session.channel.data_size_limit + b"A\r\n.")
    assert session.reply == TOO_MUCH_DATA


def test_mail_size_parameter_is_accepted(session):
    session.say(b"EHLO example", b"MAIL FROM:<eggs@example> SIZE=512")
    assert session.reply == OK


def test_mail_non_numeric_size_is_a_syntax_error(session):
    session.say(b"EHLO example", b"MAIL FROM:<eggs@example> SIZE=invalid")
    assert session.reply == MAIL_SYNTAX_EXTENDED


def test_unknown_mail_and_rcpt_parameters_are_refused_with_555(session):
    session.say(b"EHLO example", b"MAIL FROM:<eggs@example> ham=green")
    assert session.reply == MAIL_PARAMS_REFUSED
    session.say(b"MAIL FROM:<eggs@example>", b"RCPT TO:<eggs@example> ham=green")
    assert session.reply == RCPT_PARAMS_REFUSED


def test_mail_size_above_the_data_limit_is_refused_with_552(session):
    session.channel.data_size_limit = 1048
    session.say(b"EHLO example", b"MAIL FROM:<eggs@example> SIZE=2096")
    assert session.reply == (b"552 Error: message size exceeds fixed maximum message size\r\n")


def test_rcpt_before_mail_is_rejected_with_503(session):
    session.say(b"HELO example", b"RCPT to:spam@example")
    assert session.reply == b"503 Error: need MAIL command\r\n"


def test_mail_without_colon_after_helo_shows_basic_syntax(session):
    session.say(b"HELO example", b"MAIL from eggs@example")
    assert session.reply == MAIL_SYNTAX


def test_mail_without_colon_after_ehlo_shows_extended_syntax(session):
    session.say(b"EHLO example", b"MAIL from eggs@example")
    assert session.reply == MAIL_SYNTAX_EXTENDED


def test_mail_without_address_is_a_syntax_error(session):
    session.say(b"HELO example", b"MAIL from:")
    assert session.reply == MAIL_SYNTAX


def test_mail_address_in_angle_brackets_is_accepted(session):
    session.say(b"HELO example", b"MAIL from:<eggs@example>")
    assert session.reply == OK


def test_mail_null_reverse_path_is_accepted(session):
    session.say(b"EHLO example", b"MAIL from:<>")
    assert session.reply == OK


def test_mail_quoted_local_part_in_angle_brackets(session):
    session.say(b"EHLO example", b'MAIL from: <"Fred Blogs"@example.com>')
    assert session.reply == OK
    assert session.channel.mailfrom == '"Fred Blogs"@example.com'


def test_mail_quoted_local_part_without_angle_brackets(session):
    session.say(b"EHLO example", b'MAIL from: "Fred Blogs"@example.com')
    assert session.reply == OK
    assert session.channel.mailfrom == '"Fred Blogs"@example.com'


def test_mail_quoted_local_part_in_angle_brackets_with_size(session):
    session.say(b"EHLO example", b'MAIL from: <"Fred Blogs"@example.com> SIZE=1000')
    assert session.reply == OK
    assert session.channel.mailfrom == '"Fred Blogs"@example.com'


def test_mail_bare_quoted_local_part_with_size(session):
    session.say(b"EHLO example", b'MAIL from: "Fred Blogs"@example.com SIZE=1000')
    assert session.reply == OK
    assert session.channel.mailfrom == '"Fred Blogs"@example.com'


def test_second_mail_in_a_transaction_is_nested(session):
    session.say(b"HELO example", b"MAIL from:eggs@example", b"MAIL from:spam@example")
    assert session.reply == b"503 Error: nested MAIL command\r\n"


def test_vrfy_promises_to_attempt_delivery(session):
    session.say(b"VRFY eggs@example")
    assert session.reply == (
        b"252 Cannot VRFY user, but will accept message and attempt delivery\r\n"
    )


def test_vrfy_without_address_is_a_syntax_error(session):
    session.say(b"VRFY")
    assert session.reply == b"501 Syntax: VRFY <address>\r\n"


def test_expn_is_not_implemented(session):
    session.say(b"EXPN")
    assert session.reply == b"502 EXPN not implemented\r\n"


def test_mail_before_helo_is_rejected(session):
    session.say(b"MAIL from:<foo@example.com>")
    assert session.reply == SEND_HELO_FIRST


def test_data_before_rcpt_is_rejected(session):
    session.say(b"HELO example", b"MAIL From:eggs@example", b"DATA")
    assert session.reply == b"503 Error: need RCPT command\r\n"


def test_rcpt_without_colon_after_helo_shows_basic_syntax(session):
    session.say(b"HELO example", b"MAIL From: eggs@example", b"RCPT to eggs@example")
    assert session.reply == RCPT_SYNTAX


def test_rcpt_without_colon_after_ehlo_shows_extended_syntax(session):
    session.say(b"EHLO example", b"MAIL From: eggs@example", b"RCPT to eggs@example")
    assert session.reply == RCPT_SYNTAX_EXTENDED


def test_rcpt_with_lowercase_to_is_accepted(session):
    session.say(b"HELO example", b"MAIL From: eggs@example", b"RCPT to: <eggs@example>")
    assert session.reply == OK


def test_rcpt_before_helo_is_rejected(session):
    session.say(b"RCPT to eggs@example")
    assert session.reply == SEND_HELO_FIRST


def test_complete_transaction_delivers_the_message(session):
    session.say(b"HELO example", b"MAIL From:eggs@example")
    assert session.reply == OK
    session.say(b"RCPT To:spam@example")
    assert session.reply == OK
    session.say(b"DATA")
    assert session.reply == GO_AHEAD
    session.say(b"data\r\nmore\r\n.")
    assert session.reply == OK
    assert session.server.received == [(PEER, "eggs@example", ["spam@example"], "data\nmore")]


def test_data_with_argument_is_a_syntax_error(session):
    session.say(b"HELO example", b"MAIL From:eggs@example", b"RCPT To:spam@example", b"DATA spam")
    assert session.reply == b"501 Syntax: DATA\r\n"


def test_data_before_helo_is_rejected(session):
    session.say(b"DATA spam")
    assert session.reply == SEND_HELO_FIRST


def test_leading_dot_is_removed_from_data_lines(session):
    # RFC 5321 section 4.5.2 (transparency): '..' stands for '.'.
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(b"..\r\n.\r\n")
    assert session.channel.received_data == "."


def test_message_is_delivered_to_every_recipient(session):
    session.say(
        b"HELO example",
        b"MAIL From:eggs@example",
        b"RCPT To:spam@example",
        b"RCPT To:ham@example",
        b"DATA",
        b"data\r\n.",
    )
    assert session.server.received == [
        (PEER, "eggs@example", ["spam@example", "ham@example"], "data")
    ]


def test_process_message_result_becomes_the_reply(session):
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(b"return status\r\n.")
    assert session.reply == b"250 Okish\r\n"


def test_rset_discards_the_transaction_in_progress(session):
    session.say(b"HELO example", b"MAIL From:eggs@example", b"RCPT To:spam@example", b"RSET")
    assert session.reply == OK
    session.say(b"MAIL From:foo@example", b"RCPT To:eggs@example", b"DATA", b"data\r\n.")
    assert session.server.received == [(PEER, "foo@example", ["eggs@example"], "data")]


def test_rset_after_helo_replies_ok(session):
    session.say(b"HELO example", b"RSET")
    assert session.reply == OK


def test_rset_with_argument_is_a_syntax_error(session):
    session.say(b"RSET hi")
    assert session.reply == b"501 Syntax: RSET\r\n"


def test_unknown_command_is_named_in_the_error(session):
    session.say(b"UNKNOWN_CMD")
    assert session.reply == b'500 Error: command "UNKNOWN_CMD" not recognized\r\n'


RENAMED_PRIVATE_ATTRIBUTES = (
    "server",
    "line",
    "state",
    "greeting",
    "mailfrom",
    "rcpttos",
    "data",
    "fqdn",
    "peer",
    "conn",
    "addr",
)


def _only_deprecations(record):
    return [str(w.message) for w in record if not issubclass(w.category, DeprecationWarning)]


def test_old_private_attribute_names_warn_on_get_and_set(session):
    for short_name in RENAMED_PRIVATE_ATTRIBUTES:
        mangled = "_SMTPChannel__" + short_name
        with pytest.warns(DeprecationWarning) as reading:
            getattr(session.channel, mangled)
        assert _only_deprecations(reading) == [], mangled
        with pytest.warns(DeprecationWarning) as writing:
            setattr(session.channel, mangled, "spam")
        assert _only_deprecations(writing) == [], mangled


# ---------------------------------------------------------------------------
# SMTPDChannelWithDataSizeLimitTest: a channel built with data_size_limit=32
# ---------------------------------------------------------------------------


@pytest.fixture
def limited_session(open_session):
    return open_session(decode_data=True, data_size_limit=32)


def _start_data(session):
    session.say(b"HELO example", b"MAIL From:eggs@example")
    assert session.reply == OK
    session.say(b"RCPT To:spam@example")
    assert session.reply == OK
    session.say(b"DATA")
    assert session.reply == GO_AHEAD


def test_message_within_data_size_limit_is_delivered(limited_session):
    _start_data(limited_session)
    limited_session.say(b"data\r\nmore\r\n.")
    assert limited_session.reply == OK
    assert limited_session.server.received == [
        (PEER, "eggs@example", ["spam@example"], "data\nmore")
    ]


def test_message_over_data_size_limit_is_refused(limited_session):
    _start_data(limited_session)
    limited_session.say(b"This message is longer than 32 bytes\r\n.")
    assert limited_session.reply == TOO_MUCH_DATA


# ---------------------------------------------------------------------------
# SMTPDChannelWithDecodeDataFalse / SMTPDChannelWithDecodeDataTrue
# ---------------------------------------------------------------------------

UTF8_LINE = b"utf8 enriched text: \xc5\xbc\xc5\xba\xc4\x87"


def test_bytes_channel_keeps_ascii_data_as_bytes(open_session):
    session = open_session()
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(b"plain ascii text", b".")
    assert session.channel.received_data == b"plain ascii text"


def test_bytes_channel_keeps_utf8_data_as_bytes(open_session):
    session = open_session()
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(UTF8_LINE, b"and some plain ascii", b".")
    assert session.channel.received_data == UTF8_LINE + b"\nand some plain ascii"


def test_decoding_channel_turns_ascii_data_into_str(open_session):
    session = open_session(decode_data=True)
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(b"plain ascii text", b".")
    assert session.channel.received_data == "plain ascii text"


def test_decoding_channel_decodes_utf8_data(open_session):
    session = open_session(decode_data=True)
    session.say(*ENVELOPE_AFTER_HELO)
    session.say(UTF8_LINE, b"and some plain ascii", b".")
    assert session.channel.received_data == (
        "utf8 enriched text: \u017c\u017a\u0107\nand some plain ascii"
    )


# ---------------------------------------------------------------------------
# SMTPDChannelTestWithEnableSMTPUTF8True
# ---------------------------------------------------------------------------


@pytest.fixture
def utf8_session(open_session):
    return open_session(enable_SMTPUTF8=True)


# 512 octets of command plus 26 for SIZE= and 10 for SMTPUTF8 (RFC 6531).
SMTPUTF8_COMMAND_LIMIT = 512 + 26 + 10


def test_mail_with_utf8_address_accepted_when_smtputf8_announced(utf8_session):
    utf8_session.say(
        b"EHLO example",
        "MAIL from: <na\u00efve@example.com> BODY=8BITMIME SMTPUTF8".encode("utf-8"),
    )
    assert utf8_session.reply == OK


def test_smtputf8_flag_is_passed_to_process_message(utf8_session):
    utf8_session.say(b"EHLO example")
    expected_final = {b"": OK, b"BODY=8BITMIME SMTPUTF8": b"250 SMTPUTF8 message okish\r\n"}
    for parameters, final_reply in expected_final.items():
        utf8_session.say(b"MAIL from: <a@example> " + parameters)
        assert utf8_session.reply[:3] == b"250"
        utf8_session.say(b"rcpt to:<b@example.com>")
        assert utf8_session.reply[:3] == b"250"
        utf8_session.say(b"data")
        assert utf8_session.reply[:3] == b"354"
        utf8_session.say(b"c\r\n.")
        assert utf8_session.reply == final_reply


def test_smtputf8_channel_keeps_utf8_data_as_bytes(utf8_session):
    utf8_session.say(
        b"EHLO example",
        "MAIL From: na\u00efve@exampl\u00e9 BODY=8BITMIME SMTPUTF8".encode("utf-8"),
    )
    assert utf8_session.reply[:3] == b"250"
    utf8_session.say("RCPT To:sp\u00e4m@exampl\u00e9".encode("utf-8"))
    assert utf8_session.reply[:3] == b"250"
    utf8_session.say(b"DATA")
    assert utf8_session.reply[:3] == b"354"
    utf8_session.say(UTF8_LINE, b".")
    assert utf8_session.channel.received_data == UTF8_LINE


def test_smtputf8_raises_the_mail_command_length_limit(utf8_session):
    utf8_session.say(b"ehlo example")
    filler = SMTPUTF8_COMMAND_LIMIT - len("mail from:<@example>")
    utf8_session.say(b"MAIL from:<" + b"a" * (filler + 1) + b"@example>")
    assert utf8_session.reply == LINE_TOO_LONG
    utf8_session.say(b"MAIL from:<" + b"a" * filler + b"@example>")
    assert utf8_session.reply == OK


def test_raised_length_limit_holds_for_each_message(utf8_session):
    utf8_session.say(b"ehlo example")
    filler = SMTPUTF8_COMMAND_LIMIT - len("mail from:<@example>")
    for letter in (b"a", b"b", b"c"):
        utf8_session.say(b"MAIL from:<" + letter * filler + b"a@example>")
        assert utf8_session.reply[:3] == b"500"
        expected_codes = [
            (b"MAIL from:<" + letter * filler + b"@example>", b"250"),
            (b"rcpt to:<hans@example.com>", b"250"),
            (b"data", b"354"),
            (b"test\r\n.", b"250"),
        ]
        for command, code in expected_codes:
            utf8_session.say(command)
            assert utf8_session.reply[:3] == code, command


# ---------------------------------------------------------------------------
# MiscTestCase
# ---------------------------------------------------------------------------


def test_dunder_all_lists_exactly_the_public_api():
    internal = {
        "program",
        "Devnull",
        "DEBUGSTREAM",
        "NEWLINE",
        "COMMASPACE",
        "DATA_SIZE_DEFAULT",
        "usage",
        "Options",
        "parseargs",
    }
    assert sorted(smtpd.__all__) == sorted(expected_public_names(smtpd, internal))
