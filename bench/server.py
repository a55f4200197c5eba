"""One benchmark target: a sink SMTP server on 127.0.0.1, port 0.

    python server.py --impl {compat,cpython,aiosmtpd} [--workers N] [--repo DIR]

Every message is accepted with "250 OK" and thrown away.  Once listening it
prints "READY <port> <pid>[,<pid>...]" (the processes whose CPU and memory
the benchmark reads) and serves until SIGTERM.  Run by bench/run.py under
the interpreter being measured; it needs nothing but that implementation.
"""

import argparse
import os
import signal
import sys
import warnings

HOST = '127.0.0.1'


def raise_fd_limit():
    # Ten thousand idle sessions need more descriptors than the usual 1024.
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def ready(port, pids):
    print('READY %d %s' % (port, ','.join(str(pid) for pid in pids)), flush=True)


def sink_class(smtpd):
    class Sink(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            return None

    return Sink


def serve_smtpd(smtpd, asyncore):
    server = sink_class(smtpd)((HOST, 0), None)
    ready(server.socket.getsockname()[1], [os.getpid()])
    asyncore.loop()


def serve_compat_workers(count):
    import smtpd_compat
    from smtpd_compat import workers

    sink = sink_class(smtpd_compat)
    group = workers.Workers(lambda address: sink(address, None), (HOST, 0), count)
    group.start()
    signal.signal(signal.SIGTERM, lambda signum, frame: group.stop())
    ready(group.address[1], [os.getpid()] + group.pids)
    sys.exit(group.wait())


def serve_aiosmtpd():
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return '250 OK'

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(Sink()), HOST, 0))
    ready(server.sockets[0].getsockname()[1], [os.getpid()])
    loop.run_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--impl', choices=['compat', 'cpython', 'aiosmtpd'], required=True)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--repo', help='folder holding smtpd_compat')
    options = parser.parse_args()
    raise_fd_limit()
    warnings.simplefilter('ignore')  # CPython 3.11's smtpd warns on import
    if options.repo:
        sys.path.insert(0, options.repo)
    if options.impl == 'aiosmtpd':
        serve_aiosmtpd()
    elif options.impl == 'cpython':
        import asyncore
        import smtpd

        serve_smtpd(smtpd, asyncore)
    elif options.workers > 1:
        serve_compat_workers(options.workers)
    else:
        import smtpd_compat
        from smtpd_compat import asyncore

        serve_smtpd(smtpd_compat, asyncore)


if __name__ == '__main__':
    main()
