"""A server class for command-line tests (``-c ext_sink.Sink``): prints one
line per message, with the peer, so a test reading stdout knows who sent
what."""

import sys

import smtpd_compat


class Sink(smtpd_compat.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        print("received from=%s peer=%s:%d" % (mailfrom, peer[0], peer[1]))
        sys.stdout.flush()
