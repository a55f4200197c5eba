"""The version of the smtpd-compat distribution, such as ``0.1.0``.

Not to be confused with ``smtpd_compat.__version__``, which stays CPython's
``'Python SMTP proxy version 0.3'`` because the SMTP greeting and ``-V``
print it.  The version is written in one place, setup.cfg, and read here at
run time: from the installed distribution's metadata, or, when the package
is run from a checkout (not installed, or installed in editable mode), from
the checkout's setup.cfg.  The checkout is asked first: metadata found there
(an .egg-info folder left by a build, an editable install's record) is a
copy made at some earlier time, and may be stale.
"""

from __future__ import annotations

import configparser
import os

# typing is imported only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional
del TYPE_CHECKING

DISTRIBUTION = 'smtpd-compat'
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def _installed_version() -> Optional[str]:
    """The metadata's version, if the installed distribution is the one
    this very file belongs to (not another copy elsewhere on the path)."""
    # Imported here: importlib.metadata costs an import the server never needs.
    from importlib import metadata

    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    installed = os.path.realpath(str(distribution.locate_file('smtpd_compat')))
    if os.path.normcase(installed) != os.path.normcase(_PACKAGE_DIR):
        return None
    return distribution.version


def _checkout_version() -> Optional[str]:
    """The version in the setup.cfg beside this package, if it is ours."""
    config = configparser.ConfigParser()
    if not config.read(os.path.join(os.path.dirname(_PACKAGE_DIR), 'setup.cfg')):
        return None
    if config.get('metadata', 'name', fallback=None) != DISTRIBUTION:
        return None
    return config.get('metadata', 'version', fallback=None)


def package_version() -> str:
    """The distribution's version, or ``'unknown'`` if it cannot be found."""
    return _checkout_version() or _installed_version() or 'unknown'
