"""Make ``import smtpd``, ``import asyncore`` and ``import asynchat`` work on
any Python, for code that cannot be changed to import ``smtpd_compat``
(third-party libraries, old test suites).

Call ``install()`` once, early, before that code is imported::

    import smtpd_compat.shim
    smtpd_compat.shim.install()

Where the standard library still has ``smtpd`` (Python 3.8-3.11), it is
left to serve, and nothing is registered.  Where it is gone (3.12 and
later), ``smtpd_compat`` and its ``asyncore`` and ``asynchat`` are put in
``sys.modules`` under the three old names.

The three are registered together or not at all: our ``smtpd`` runs only
on our ``asyncore`` loop, so a library that does ``import asyncore`` next to
``import smtpd`` must get ours even where a separate backport of asyncore
(such as the ``pyasyncore`` distribution) is installed.

Public names: ``install``, ``MODULE_NAMES``.
"""

from __future__ import annotations

import importlib.util
import sys

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Dict
del TYPE_CHECKING

__all__ = ['install', 'MODULE_NAMES']

# The old name of each module, and where ours lives.
MODULE_NAMES = {
    'smtpd': 'smtpd_compat',
    'asyncore': 'smtpd_compat.asyncore',
    'asynchat': 'smtpd_compat.asynchat',
}


def _importable(name: str) -> bool:
    """Whether *name* is imported already or could be imported."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install(*, force: bool = False) -> Dict[str, ModuleType]:
    """Register our modules as ``smtpd``, ``asyncore`` and ``asynchat``.

    Does nothing where an ``smtpd`` module is already imported or can be
    imported (the standard library's, on Python 3.8-3.11), unless *force*
    is true: then ours are used on every Python, for the same behaviour
    everywhere.  Returns the modules registered, by old name: an empty dict
    when nothing was.  Calling it again changes nothing.

    Raises RuntimeError when it would have to register ours but another
    module of one of the three names has already been imported: code
    holding that module would not work with ours.
    """
    if not force and _importable('smtpd'):
        return {}
    ours = {old: importlib.import_module(new) for old, new in MODULE_NAMES.items()}
    clashes = sorted(
        old for old, module in ours.items() if sys.modules.get(old, module) is not module
    )
    if clashes:
        raise RuntimeError(
            'smtpd_compat.shim.install(): %s already imported from elsewhere;'
            ' call install() before anything imports them' % ', '.join(clashes)
        )
    registered = {old: module for old, module in ours.items() if old not in sys.modules}
    sys.modules.update(registered)
    return registered
