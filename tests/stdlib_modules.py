"""CPython's own asyncore, asynchat and smtpd, for tests that compare with them.

They exist up to Python 3.11.  The suites under Lib-tests-ported bind the names
``asyncore``, ``asynchat`` and ``smtpd`` in ``sys.modules`` to our modules, so a
plain import could hand back ours: the stdlib files are loaded here under private
names instead, each seeing the other two as the stdlib's.
"""

import importlib.util
import os
import sys
import sysconfig
import warnings

_NAMES = ("asyncore", "asynchat", "smtpd")  # each imports the ones before it
_loaded = {}


def stdlib_modules():
    """{'asyncore': ..., 'asynchat': ..., 'smtpd': ...} from the stdlib, or None."""
    if sys.version_info >= (3, 12):
        return None
    if not _loaded:
        folder = sysconfig.get_paths()["stdlib"]
        saved = {name: sys.modules.get(name) for name in _NAMES}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                for name in _NAMES:
                    path = os.path.join(folder, name + ".py")
                    spec = importlib.util.spec_from_file_location("_stdlib_" + name, path)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module  # what the next one's import finds
                    spec.loader.exec_module(module)
                    _loaded[name] = module
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
    return dict(_loaded)
