"""Command line: ``python -m smtpd_compat [options] [local [remote]]``.

Behaves as ``python -m smtpd`` did in Python 3.11; ``--help`` explains the
options.  ``main()`` is also the console-script entry point.
"""

import importlib
import os
import sys

import smtpd_compat


def _server_class(name):
    """Find the server class named by --class.

    A dotted name is imported from its module; a plain one is taken from
    smtpd_compat, as CPython's took it from smtpd itself.
    """
    module_name, dot, class_name = name.rpartition('.')
    module = importlib.import_module(module_name) if dot else smtpd_compat
    return getattr(module, class_name)


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
    options = smtpd_compat.parseargs()
    try:
        server_class = _server_class(options.classname)
        # No need to keep the server: it registers itself with the loop.
        server_class(
            (options.localhost, options.localport),
            (options.remotehost, options.remoteport),
            options.size_limit, enable_SMTPUTF8=options.enable_SMTPUTF8)
        if options.setuid:
            _become_nobody()
        smtpd_compat.asyncore.loop()
    except KeyboardInterrupt:
        pass    # Ctrl-C is how one stops the server: no traceback


if __name__ == '__main__':
    main()
