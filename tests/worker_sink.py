"""A server class for the --workers tests (``-c worker_sink.PidSink``): prints one
line per message, "<pid of the process that took it> <subject>"."""

import os
import sys

import smtpd_compat


class PidSink(smtpd_compat.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        subject = data.split(b"\n", 1)[0].decode()
        print("%d %s" % (os.getpid(), subject))
        sys.stdout.flush()
