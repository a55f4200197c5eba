"""Command line: ``python -m smtpd_compat [options] [local [remote]]``.

Behaves as ``python -m smtpd`` did in Python 3.11, except where README.rst
says otherwise ("Differences from CPython's smtpd"); ``--help`` explains the
options.  ``main()`` is also the console-script entry point.

Options of ours, taken out of the arguments before CPython's parser reads
them (so that ``--help`` and its messages stay CPython's): ``--workers N``
(here), the extension options (``cli``) and ``--version-info``, which
prints this package's version and exits.
"""

from __future__ import annotations

import getopt
import importlib
import os
import sys

import smtpd_compat
from smtpd_compat import cli, workers

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, NoReturn, Optional, Tuple, Type

    from smtpd_compat import Options, SMTPServer
del TYPE_CHECKING

# Our options that cli.take_options leaves alone.
_WORKERS = 'workers'  # takes a value
_VERSION_INFO = 'version-info'


def _fail(message: str) -> NoReturn:
    """Exit with status 1 and *message* on stderr (CPython's command line
    showed a traceback for the problems that come here)."""
    print(message, file=sys.stderr)
    sys.exit(1)


def _server_class(name: str) -> Type[SMTPServer]:
    """Find the server class named by --class.

    A dotted name is imported from its module; a plain one is taken from
    smtpd_compat, as CPython's took it from smtpd itself.
    """
    module_name, dot, class_name = name.rpartition('.')
    try:
        module = importlib.import_module(module_name) if dot else smtpd_compat
        server_class: Type[SMTPServer] = getattr(module, class_name)
    except (ImportError, AttributeError, ValueError) as error:
        _fail('Cannot find class "%s": %s' % (name, error))
    return server_class


def _getopt_specs() -> Tuple[str, List[str]]:
    """getopt's specification of CPython's options and the extensions'."""
    short, longs = smtpd_compat._getopt_specs()
    return short, longs + [name + ('=' if value else '') for name, value in cli.OPTIONS.items()]


def _version_info_asked(args: List[str]) -> bool:
    """Whether ``--version-info`` is among the options in *args*.

    getopt stops at the first positional argument, as it does for CPython's
    -V.  A command line that is wrong even with every option known (ours
    too) gets CPython's usage and getopt's message, which names the option
    at fault: CPython's parser, which knows none of ours, would blame the
    first of ours instead.  Only an abbreviation that our options made
    ambiguous (``--vers``, ``--smtp``) is left to the parsers after us,
    which read it as CPython's did.
    """
    short, longs = _getopt_specs()
    longs = longs + [_WORKERS + '=', _VERSION_INFO]
    try:
        given, _ = getopt.getopt(args, short, longs)
    except getopt.GetoptError as error:
        names = [name.rstrip('=') for name in longs]
        if error.opt not in names and sum(name.startswith(error.opt) for name in names) > 1:
            return False
        smtpd_compat.usage(1, error.msg)
    return any(option == '--' + _VERSION_INFO for option, _ in given)


def _version_line() -> str:
    """The line ``--version-info`` prints: this package's version, the
    proxy version CPython's smtpd announced, and the Python running it."""
    # Imported here: only this option needs them.
    import platform

    from smtpd_compat._package_version import DISTRIBUTION, package_version

    return '%s %s (%s) on Python %s' % (
        DISTRIBUTION,
        package_version(),
        smtpd_compat.__version__,
        platform.python_version(),
    )


def _take_workers(args: List[str]) -> Tuple[List[str], int]:
    """Take ``--workers N`` out of *args*, as cli.take_options takes the
    extensions' options: return (the other arguments, N, 1 if not given)."""
    short, longs = _getopt_specs()
    try:
        given, positional = getopt.getopt(args, short, longs + [_WORKERS + '='])
    except getopt.GetoptError:
        return args, 1  # for the parsers after us to report, in their words
    rest: List[str] = []
    count: Optional[str] = None
    for option, value in given:
        if option == '--' + _WORKERS:
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


def _serve_with_workers(
    server_class: Type[SMTPServer], options: Options, extensions: Dict[str, Any], count: int
) -> int:
    """--workers: *count* processes, each with its own server and loop
    (smtpd_compat.workers); returns the exit status."""

    def start(address: Tuple[str, int]) -> None:
        _start_server(server_class, options, extensions, address)
        if options.setuid:
            _become_nobody()

    local = (options.localhost, options.localport)
    try:
        return workers.serve(start, local, count)
    except OSError as error:  # e.g. the address is in use
        _fail('Cannot listen on %s: %s' % (_show_address(*local), error))


def _start_server(
    server_class: Type[SMTPServer],
    options: Options,
    extensions: Dict[str, Any],
    local: Optional[Tuple[str, int]] = None,
) -> None:
    """Create the server, which registers itself with the loop."""
    if local is None:
        local = (options.localhost, options.localport)
    if extensions:
        _check_takes_extensions(server_class, options.classname, extensions)
    try:
        server_class(
            local,
            (options.remotehost, options.remoteport),
            options.size_limit,
            enable_SMTPUTF8=options.enable_SMTPUTF8,
            **extensions,
        )
    except ValueError as error:  # e.g. PureProxy refuses --smtputf8
        _fail('Cannot start %s: %s' % (options.classname, error))
    except OSError as error:  # e.g. the address is in use
        _fail('Cannot listen on %s: %s' % (_show_address(*local), error))


def _check_takes_extensions(
    server_class: Type[SMTPServer], name: str, extensions: Dict[str, Any]
) -> None:
    # A -c class whose __init__ lists its parameters without **kwargs cannot
    # take the extensions' options: say so rather than fail with a traceback
    # from inside the constructor.
    import inspect

    try:
        signature = inspect.signature(server_class)
    except (TypeError, ValueError):
        return  # nothing to read: let the call itself decide
    try:
        signature.bind(None, None, 0, enable_SMTPUTF8=False, **extensions)
    except TypeError as error:
        _fail('Cannot start %s with %s: %s' % (name, ', '.join(sorted(extensions)), error))


def _show_address(host: str, port: int) -> str:
    return ('[%s]:%d' if ':' in host else '%s:%d') % (host, port)


def _become_nobody() -> None:
    """Drop root privileges after binding (which may need them)."""
    try:
        import pwd
    except ImportError:
        print('Cannot import module "pwd"; try running with -n option.', file=sys.stderr)
        sys.exit(1)
    try:
        os.setuid(pwd.getpwnam('nobody').pw_uid)
    except PermissionError:
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Run the server described by sys.argv until interrupted."""
    # Read now, not at import: under "python -m" the package is imported
    # while sys.argv[0] is still "-m".
    smtpd_compat.program = sys.argv[0]
    # Like -V, --version-info prints and exits, whatever else is given.
    if _version_info_asked(sys.argv[1:]):
        print(_version_line())
        return
    # Our own options (--timeout, --tls-cert, ...) are taken out first, so
    # that CPython's parser, help text and errors stay as they were.
    sys.argv[1:], count = _take_workers(sys.argv[1:])
    sys.argv[1:], extensions = cli.take_options(sys.argv[1:], *smtpd_compat._getopt_specs())
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
        pass  # Ctrl-C is how one stops the server: no traceback


if __name__ == '__main__':
    main()
