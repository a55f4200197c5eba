"""mail_sink.py: save every message sent to it as a file, for testing code
that sends mail.

Usage: python3 mail_sink.py FOLDER [HOST:PORT]      (default localhost:1025)

A script as many were written before Python 3.12 removed smtpd and asyncore,
migrated to smtpd_compat by changing its two import lines and nothing else:

    -import asyncore
    -import smtpd
    +import smtpd_compat as smtpd
    +from smtpd_compat import asyncore

Stop it with Ctrl-C.
"""

import os
import sys
import time

import smtpd_compat as smtpd
from smtpd_compat import asyncore


class MailSink(smtpd.SMTPServer):
    """Writes each message into a folder, as NNNN.eml, with the envelope
    recorded in X-Envelope-* headers at its top."""

    def __init__(self, localaddr, folder):
        # decode_data=True: process_message gets str, as in Python 3.4.
        smtpd.SMTPServer.__init__(self, localaddr, None, decode_data=True)
        self.folder = folder
        self.saved = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.saved += 1
        path = os.path.join(self.folder, '%04d.eml' % self.saved)
        with open(path, 'w') as out:
            out.write('X-Envelope-From: %s\n' % mailfrom)
            out.write('X-Envelope-To: %s\n' % ', '.join(rcpttos))
            out.write(data + '\n')
        print(
            '%s saved %s (%d bytes from %s)'
            % (time.strftime('%H:%M:%S'), path, len(data), peer[0])
        )
        sys.stdout.flush()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    folder = sys.argv[1]
    host, _, port = (sys.argv[2] if len(sys.argv) == 3 else 'localhost:1025').rpartition(':')
    if not os.path.isdir(folder):
        os.makedirs(folder)
    server = MailSink((host, int(port)), folder)
    print('Listening on %s:%d, saving into %s' % (server.socket.getsockname()[:2] + (folder,)))
    sys.stdout.flush()
    try:
        asyncore.loop()
    except KeyboardInterrupt:
        print('%d messages saved' % server.saved)


if __name__ == '__main__':
    main()
