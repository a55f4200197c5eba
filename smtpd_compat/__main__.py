"""Command line: ``python -m smtpd_compat [options] [local [remote]]``.

Behaves as ``python -m smtpd`` did in Python 3.11, except where README.rst
says otherwise ("Differences from CPython's smtpd"); ``--help`` explains the
options.  ``main()`` is also the console-script entry point.
"""

import getopt
import importlib
import os
import sys

import smtpd_compat
from smtpd_compat import cli, workers


def _fail(message):
    """Exit with status 1 and *message* on stderr (CPython's command line
    showed a traceback for the problems that come here)."""
    print(message, file=sys.stderr)
    sys.exit(1)


def _server_class(name):
    """Find the server class named by --class.

    A dotted name is imported from its module; a plain one is taken from
    smtpd_compat, as CPython's took it from smtpd itself.
    """
    module_name, dot, class_name = name.rpartition('.')
    try:
        module = importlib.import_module(module_name) if dot else smtpd_compat
        return getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as error:
        _fail('Cannot find class "%s": %s' % (name, error))


def _take_workers(args):
    """Take ``--workers N`` out of *args*, as cli.take_options takes the
    extensions' options: return (the other arguments, N, 1 if not given)."""
    short, longs = smtpd_compat._getopt_specs()
    longs = longs + [name + ('=' if value else '') for name, value in cli.OPTIONS.items()]
    try:
        given, positional = getopt.getopt(args, short, longs + ['workers='])
    except getopt.GetoptError:
        return args, 1  # for the parsers after us to report, in their words
    rest, count = [], None
    for option, value in given:
        if option == '--workers':
            count = value
        elif option.startswith('--'):
            rest.extend([option, value] if option[2:] + '=' in longs else [option])
        else:
            rest.extend([option, value] if option[1] + ':' in short else [option])
    if count is None:
        return args, 1
    if not count.isdecimal() or int(count) < 1:
        _fail('Invalid workers: %s' % count)
    if any(argument.startswith('-') for argument in positional):
        rest.append('--')
    return rest + positional, int(count)


def _serve_with_workers(server_class, options, extensions, count):
    """--workers: *count* processes, each with its own server and loop
    (smtpd_compat.workers); returns the exit status."""
    def start(address):
        _start_server(server_class, options, extensions, address)
        if options.setuid:
            _become_nobody()
    local = (options.localhost, options.localport)
    try:
        return workers.serve(start, local, count)
    except OSError as error:    # e.g. the address is in use
        _fail('Cannot listen on %s: %s' % (_show_address(*local), error))


def _start_server(server_class, options, extensions, local=None):
    """Create the server, which registers itself with the loop."""
    if local is None:
        local = (options.localhost, options.localport)
    try:
        server_class(local, (options.remotehost, options.remoteport),
                     options.size_limit,
                     enable_SMTPUTF8=options.enable_SMTPUTF8, **extensions)
    except ValueError as error:     # e.g. PureProxy refuses --smtputf8
        _fail('Cannot start %s: %s' % (options.classname, error))
    except OSError as error:        # e.g. the address is in use
        _fail('Cannot listen on %s: %s' % (_show_address(*local), error))


def _show_address(host, port):
    return ('[%s]:%d' if ':' in host else '%s:%d') % (host, port)


def _become_nobody():
    """Drop root privileges after binding (which may need them)."""
    try:
        import pwd
    except ImportError:
        print('Cannot import module "pwd"; try running with -n option.',
              file=sys.stderr)
        sys.exit(1)
    try:
        os.setuid(pwd.getpwnam('nobody').pw_uid)
    except PermissionError:
        print('Cannot setuid "nobody"; try running with -n option.',
              file=sys.stderr)
        sys.exit(1)


def main():
    """Run the server described by sys.argv until interrupted."""
    # Read now, not at import: under "python -m" the package is imported
    # while sys.argv[0] is still "-m".
    smtpd_compat.program = sys.argv[0]
    # Our own options (--timeout, --tls-cert, ...) are taken out first, so
    # that CPython's parser, help text and errors stay as they were.
    sys.argv[1:], count = _take_workers(sys.argv[1:])
    sys.argv[1:], extensions = cli.take_options(
        sys.argv[1:], *smtpd_compat._getopt_specs())
    options = smtpd_compat.parseargs()
    try:
        server_class = _server_class(options.classname)
        if count > 1:
            sys.exit(_serve_with_workers(server_class, options, extensions, count))
        _start_server(server_class, options, extensions)
        if options.setuid:
            _become_nobody()
        smtpd_compat.asyncore.loop()
    except KeyboardInterrupt:
        pass    # Ctrl-C is how one stops the server: no traceback


if __name__ == '__main__':
    main()
