"""Build the sdist and the wheel, check them, and test what users would get.

Usage: python tools/check_dist.py WORKDIR [pytest arguments]

Run by ``./run-tests -e build`` (the tox env provides ``build`` and
``twine``).  In WORKDIR, which it empties first, it:

1. builds both distributions from this checkout (``python -m build``);
2. checks them with ``twine check --strict`` (metadata, README rendering);
3. checks their contents: the wheel carries the package and ``py.typed``;
   the sdist carries every file of ``tests/``, ``Lib-tests-ported/`` and
   ``examples/`` that this checkout has;
4. installs the wheel into a fresh venv, with the test requirements;
5. unpacks the sdist, checks that its copy of the package is the wheel's,
   byte for byte, and runs its tests with the venv's pytest from the
   unpacked folder.  The tests import the package from the venv (pytest
   puts tests/ and Lib-tests-ported/ on sys.path, not the folder above);
   the servers they start as subprocesses import the sdist's identical copy.

Exits non-zero at the first step that fails.
"""

from __future__ import annotations

import configparser
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from typing import List

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_TREES = ('tests', 'Lib-tests-ported', 'examples')
TEST_REQUIREMENTS = ('pytest', 'pytest-timeout', 'hypothesis')
WHEEL_MUST_HAVE = (
    'smtpd_compat/__init__.py',
    'smtpd_compat/__main__.py',
    'smtpd_compat/asyncore.py',
    'smtpd_compat/asynchat.py',
    'smtpd_compat/shim.py',
    'smtpd_compat/py.typed',
)


def step(message: str) -> None:
    print('\n==> ' + message, flush=True)


def run(*command: str, cwd: str = CHECKOUT) -> None:
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def fail(message: str) -> None:
    sys.exit('check_dist: ' + message)


def checkout_files(tree: str) -> List[str]:
    """The files under *tree* in this checkout, as relative paths, leaving
    out what test runs leave behind."""
    found = []
    for folder, subfolders, files in os.walk(os.path.join(CHECKOUT, tree)):
        subfolders[:] = [name for name in subfolders if not name.startswith(('.', '__pycache__'))]
        for name in files:
            if not name.endswith(('.pyc', '.pyo')):
                path = os.path.join(folder, name)
                found.append(os.path.relpath(path, CHECKOUT).replace(os.sep, '/'))
    return sorted(found)


def only(pattern: str) -> str:
    matches = glob.glob(pattern)
    if len(matches) != 1:
        fail('expected one file matching %s, found %r' % (pattern, matches))
    return matches[0]


def check_contents(wheel: str, sdist: str) -> None:
    wheel_names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in WHEEL_MUST_HAVE if name not in wheel_names]
    if missing:
        fail('the wheel lacks %s' % ', '.join(missing))
    print('wheel: %d files, the package and py.typed among them' % len(wheel_names))

    with tarfile.open(sdist) as archive:
        # Member names start with the "name-version/" folder.
        sdist_names = {name.split('/', 1)[1] for name in archive.getnames() if '/' in name}
    expected = [name for tree in SHIPPED_TREES for name in checkout_files(tree)]
    missing = [name for name in expected if name not in sdist_names]
    if missing:
        fail('the sdist lacks %s (see MANIFEST.in)' % ', '.join(missing))
    print(
        'sdist: %d files, all %d of %s among them'
        % (len(sdist_names), len(expected), ', '.join(SHIPPED_TREES))
    )


def check_same_package(wheel: str, tree: str) -> None:
    """The package in the unpacked sdist *tree* is the wheel's, file for file."""
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {
            name: archive.read(name)
            for name in archive.namelist()
            if name.startswith('smtpd_compat/')
        }
    in_sdist = {}
    for name in os.listdir(os.path.join(tree, 'smtpd_compat')):
        path = os.path.join(tree, 'smtpd_compat', name)
        if os.path.isfile(path):
            with open(path, 'rb') as file:
                in_sdist['smtpd_compat/' + name] = file.read()
    if in_sdist != in_wheel:
        fail(
            'the package differs between the sdist and the wheel: %s'
            % sorted(set(in_sdist.items()) ^ set(in_wheel.items()))
        )


def version_in_setup_cfg() -> str:
    config = configparser.ConfigParser()
    config.read(os.path.join(CHECKOUT, 'setup.cfg'))
    return config['metadata']['version']


def main(workdir: str, pytest_arguments: List[str]) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    dist = os.path.join(workdir, 'dist')

    step('build the sdist and the wheel')
    run(sys.executable, '-m', 'build', '--outdir', dist, CHECKOUT)
    wheel = only(os.path.join(dist, '*.whl'))
    sdist = only(os.path.join(dist, '*.tar.gz'))

    step('twine check')
    run(sys.executable, '-m', 'twine', 'check', '--strict', wheel, sdist)

    step('what they carry')
    check_contents(wheel, sdist)

    step('install the wheel into a fresh venv')
    venv = os.path.join(workdir, 'venv')
    run(sys.executable, '-m', 'venv', venv)
    python = os.path.join(venv, 'bin', 'python')
    run(
        python,
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        wheel,
        *TEST_REQUIREMENTS,
    )
    # Outside any checkout, so that only the installed copy can be found.
    probe = (
        'import smtpd_compat, importlib.metadata as m; '
        'print(smtpd_compat.__file__); print(m.version("smtpd-compat"))'
    )
    where = subprocess.run(
        [python, '-c', probe], cwd=workdir, check=True, capture_output=True, text=True
    ).stdout.split()
    if not where[0].startswith(os.path.join(venv, 'lib')):
        fail('the venv imports smtpd_compat from %s' % where[0])
    if where[1] != version_in_setup_cfg():
        fail('installed version %s, setup.cfg says %s' % (where[1], version_in_setup_cfg()))
    print('installed: smtpd-compat %s at %s' % (where[1], where[0]))

    step("run the sdist's tests against the installed wheel")
    unpacked = os.path.join(workdir, 'sdist')
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split('/', 1)[0]
        if hasattr(tarfile, 'data_filter'):  # Python 3.12+, and later patch releases
            archive.extractall(unpacked, filter='data')
        else:
            archive.extractall(unpacked)  # our own archive, just built
    tree = os.path.join(unpacked, top)
    check_same_package(wheel, tree)
    run(os.path.join(venv, 'bin', 'pytest'), *pytest_arguments, cwd=tree)


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(os.path.abspath(sys.argv[1]), sys.argv[2:])
