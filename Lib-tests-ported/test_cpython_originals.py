"""Run CPython's ORIGINAL test_smtpd, test_asyncore and test_asynchat against smtpd_compat.

The original files are executed unmodified, from where they lie, with the names
``smtpd``, ``asyncore`` and ``asynchat`` bound to our modules in ``sys.modules``.
Their ``unittest.TestCase`` classes are exposed here so pytest collects every
original test method as an item of its own.

Where the files come from, first match wins:

1. the running interpreter's own ``Lib/test`` (CPython 3.8-3.11 ship them);
2. the folder named by ``SMTPD_COMPAT_CPYTHON_TESTS`` (a CPython <= 3.11
   ``Lib/test``), which is how 3.11's files run under 3.12 and 3.13.

With neither, every test here is reported as *skipped*, never as passed -- unless
``SMTPD_COMPAT_REQUIRE_ORIGINALS`` is set (CI sets it), which turns that into a
failure so a CI run can't go green without having run the originals.
"""

import importlib.util
import os
import sys
import unittest

import pytest

import smtpd_compat
from smtpd_compat import asynchat, asyncore

ORIGINAL_SUITES = ("test_smtpd", "test_asyncore", "test_asynchat")
FOLDER_VARIABLE = "SMTPD_COMPAT_CPYTHON_TESTS"
REQUIRE_VARIABLE = "SMTPD_COMPAT_REQUIRE_ORIGINALS"


def _has_originals(folder):
    return all(os.path.isfile(os.path.join(folder, name + ".py")) for name in ORIGINAL_SUITES)


def find_original_tests():
    """Return the Lib/test folder holding CPython's original files, or None."""
    try:
        import test
    except ImportError:  # a Python built without its test package
        own = None
    else:
        own = os.path.dirname(test.__file__)
    if own and _has_originals(own):
        return own
    named = os.environ.get(FOLDER_VARIABLE)
    if named:
        if not _has_originals(named):
            raise RuntimeError(
                "%s=%s does not hold %s" % (FOLDER_VARIABLE, named, ", ".join(ORIGINAL_SUITES))
            )
        return named
    return None


def _load_original(folder, suite_name):
    path = os.path.join(folder, suite_name + ".py")
    # Registered under the name CPython gives it, so its pickling and repr look as usual.
    spec = importlib.util.spec_from_file_location("test." + suite_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _expose_test_cases(module, suite_name):
    for name, value in vars(module).items():
        is_case = isinstance(value, type) and issubclass(value, unittest.TestCase)
        if is_case and value.__module__ == module.__name__:
            globals()["%s__%s" % (suite_name, name)] = value


if os.environ.get("SMTPD_COMPAT_IMPL", "compat") != "compat":
    # The ported suite is being pointed at CPython itself; originals against
    # CPython would prove nothing about smtpd_compat.
    pytest.skip("SMTPD_COMPAT_IMPL selects CPython's modules", allow_module_level=True)

ORIGINALS_FOLDER = find_original_tests()

if ORIGINALS_FOLDER is None:
    _reason = (
        "CPython's original test_smtpd/test_asyncore/test_asynchat were not found: this "
        "interpreter has none; set %s to a CPython <= 3.11 Lib/test folder" % FOLDER_VARIABLE
    )
    if os.environ.get(REQUIRE_VARIABLE):
        raise RuntimeError(_reason + " (required because %s is set)" % REQUIRE_VARIABLE)
    pytest.skip(_reason, allow_module_level=True)

# From here on, for the rest of this process, the original names mean our modules.
sys.modules["smtpd"] = smtpd_compat
sys.modules["asyncore"] = asyncore
sys.modules["asynchat"] = asynchat

for _suite_name in ORIGINAL_SUITES:
    _expose_test_cases(_load_original(ORIGINALS_FOLDER, _suite_name), _suite_name)


def test_originals_are_run_against_smtpd_compat():
    # Guards the mapping itself: a passing original suite proves nothing about us
    # unless the module it exercised was ours.
    loaded = sys.modules["test.test_smtpd"]
    assert loaded.smtpd is smtpd_compat
    assert sys.modules["test.test_asyncore"].asyncore is asyncore
    assert sys.modules["test.test_asynchat"].asynchat is asynchat
