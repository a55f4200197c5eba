"""Every code block in README.rst is run here, so that none can go stale.

How a block is run depends on its language (``.. code-block:: LANGUAGE``) and
on an optional marker: an RST comment, invisible on the rendered page,
anywhere between the block before and this one::

    .. readme-test: MODE [; replace "OLD" "NEW"]...

MODE is one of:

``run`` (``run python`` for a ``::`` block of Python)
    The default for ``python`` and ``shell`` blocks.  Python is run in a new
    interpreter; shell lines are run by bash from the top of the checkout.
    Either must exit with status 0.
``console``
    The default for ``console`` blocks: lines starting with ``$ `` are
    commands; the lines up to the next command are what it must print
    (stdout and stderr together), where ``...`` matches anything.
``server PORT; expect "TEXT"``
    The block is a command that starts a server on PORT.  It is started on
    port 0 instead; the ``client PORT`` blocks after it are then run with
    the server's real port in place of PORT, the server must print TEXT,
    and it must exit with status 0 on Ctrl-C.
``client PORT``
    Run by the ``server`` block above it.
``run-tests``
    ``./run-tests`` command lines, run with a stand-in for tox that records
    what it is given: the arguments must reach tox unchanged, and every
    Python 3.8-3.13 that pyenv holds must be on tox's PATH.  (CI runs the
    real thing.)
``skip: REASON``
    Not run, for a block that must not run here (an install into the
    running interpreter); the reason says where it is covered instead.

``replace "OLD" "NEW"`` changes the block's text before it is run: for
example a long run's session count, made short.

In every mode ``python3`` is the interpreter running these tests, and the
package is imported from the checkout.  A plain ``::`` literal block has no
language, so it needs a marker; a block that has neither fails
``test_every_block_can_be_run``.
"""

import doctest
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, ServerProcess

README = os.path.join(REPO, "README.rst")
DEFAULT_MODES = {"python": "run", "shell": "run", "console": "console", "pycon": "doctest"}
MARKER = re.compile(r"^\s*\.\. readme-test:\s*(.*?)\s*$")
CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block::\s*(\S+)\s*$")
TIMEOUT = 120


class Block:
    def __init__(self, line, language, text, marker):
        self.line, self.language, self.text = line, language, text
        self.marker = marker
        self.mode, self.argument, self.replacements, self.expect = self._parse_marker(marker)

    def _parse_marker(self, marker):
        """(mode, its argument, [(old, new)], expected server output)."""
        if marker is None:
            return DEFAULT_MODES.get(self.language), None, [], None
        if marker.startswith("skip:"):  # the reason may hold anything
            return "skip", marker[len("skip:") :].strip() or None, [], None
        head, *modifiers = marker.split(";")
        mode, _, argument = head.strip().partition(" ")
        replacements, expect = [], None
        for modifier in modifiers:
            words = shlex.split(modifier)
            if words[:1] == ["replace"] and len(words) == 3:
                replacements.append((words[1], words[2]))
            elif words[:1] == ["expect"] and len(words) == 2:
                expect = words[1]
            else:
                raise ValueError("README.rst line %d: bad modifier %r" % (self.line, modifier))
        return mode, argument.strip() or None, replacements, expect

    def runnable_text(self):
        text = self.text
        for old, new in self.replacements:
            assert old in text, "README.rst line %d: %r not in the block" % (self.line, old)
            text = text.replace(old, new)
        return text

    def __repr__(self):
        first = self.text.strip().splitlines()[0]
        return "line %d: %s" % (self.line, first[:50])


def blocks_of(path):
    """The literal blocks of an RST file, with their language and marker."""
    with open(path, encoding="utf-8") as readme:
        lines = readme.read().splitlines()
    found, marker, index = [], None, 0
    while index < len(lines):
        line = lines[index]
        marked = MARKER.match(line)
        directive = CODE_BLOCK.match(line)
        is_literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if marked:
            marker = marked.group(1)
        if directive or is_literal:
            indent = len(line) - len(line.lstrip())
            language = directive.group(2) if directive else None
            body, index = _indented_body(lines, index + 1, indent)
            if body is not None:
                start = index - len(body)
                found.append(Block(start + 1, language, textwrap.dedent("\n".join(body)), marker))
                marker = None
                continue
        index += 1
    return found


def _indented_body(lines, index, indent):
    """The block of lines more indented than *indent* from *index* on
    (directive options and the blank line before it skipped)."""
    while index < len(lines) and (
        not lines[index].strip() or lines[index].strip().startswith(":")
    ):
        if lines[index].strip() and len(lines[index]) - len(lines[index].lstrip()) <= indent:
            return None, index
        index += 1
    body = []
    while index < len(lines):
        line = lines[index]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
        index += 1
    while body and not body[-1].strip():
        body.pop()
        index -= 1
    return (body or None), index


BLOCKS = blocks_of(README)


# --------------------------------------------------------------------------
# Running blocks.


@pytest.fixture
def python3_on_path(tmp_path):
    """An environment in which ``python3`` is the interpreter under test and
    the checkout's package is importable."""
    folder = tmp_path / "python3-here"
    folder.mkdir()
    # A script, not a symlink: a venv's python reached through a link in
    # another folder would not find its venv.
    python3 = folder / "python3"
    python3.write_text('#!/bin/sh\nexec %s "$@"\n' % shlex.quote(sys.executable))
    python3.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(folder), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return env


def run_shell(text, env, cwd=REPO):
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", text],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def run_block(block, env, tmp_path):
    text = block.runnable_text()
    if (block.language or block.argument) == "python":
        done = subprocess.run(
            [sys.executable, "-c", text],
            env=env,
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT,
        )
    else:
        done = run_shell(text, env)
    assert done.returncode == 0, "README.rst %r failed:\n%s" % (block, done.stdout)


def run_console(block, env):
    """``$ command`` lines followed by their expected output."""
    checker = doctest.OutputChecker()
    command, expected = None, []
    steps = []
    for line in block.runnable_text().splitlines() + ["$ "]:
        if line.startswith("$ "):
            if command:
                steps.append((command, "".join(expected)))
            command, expected = line[2:], []
        else:
            expected.append(line + "\n")
    for command, want in steps:
        got = run_shell(command, env).stdout
        assert checker.check_output(want, got, doctest.ELLIPSIS), (
            "README.rst %r: `%s` printed\n%s\ninstead of\n%s" % (block, command, got, want)
        )


def run_doctest(block):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.runnable_text(), {}, "README.rst", README, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def run_server(block, clients, env):
    argv = shlex.split(block.runnable_text().replace(block.argument, "0"))
    argv = [sys.executable if word == "python3" else word for word in argv]
    server = ServerProcess(argv)
    try:
        for client in clients:
            text = client.runnable_text().replace(client.argument, str(server.port))
            done = run_shell(text, env)
            assert done.returncode == 0, "README.rst %r failed:\n%s" % (client, done.stdout)
        if block.expect:
            server.read_stdout_until(block.expect)
        status, _, stderr = server.interrupt()
        assert (status, stderr) == (0, "")
    finally:
        server.kill()


STAND_IN_TOX = '''#!%(python)s
"""Stands in for `python -m tox`: records its arguments and its PATH's Pythons."""
import json, os, shutil, subprocess, sys
if sys.argv[1:3] != ["-m", "tox"]:
    sys.exit("stand-in: expected -m tox, got %%r" %% sys.argv[1:])
if sys.argv[3:] == ["--version"]:
    sys.exit(0)
pythons = {}
for minor in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13"):
    found = shutil.which("python" + minor)
    if found:
        version = subprocess.run([found, "--version"], capture_output=True, text=True)
        pythons[minor] = version.stdout.strip()
with open(%(record)r, "a") as record:
    record.write(json.dumps({"args": sys.argv[3:], "pythons": pythons}) + "\\n")
'''


def pyenv_minors():
    """The minor versions 3.8-3.13 that pyenv holds, if pyenv is here."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return set()
    versions = os.listdir(os.path.join(root, "versions")) if root else []
    return {
        minor
        for minor in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
        if any(re.fullmatch(re.escape(minor) + r"\.\d+", name) for name in versions)
    }


def run_run_tests(block, env, tmp_path):
    import json

    record = tmp_path / "tox-calls.jsonl"
    stand_in = tmp_path / "stand-in-python"
    stand_in.write_text(STAND_IN_TOX % {"python": sys.executable, "record": str(record)})
    stand_in.chmod(0o755)
    commands = [line for line in block.runnable_text().splitlines() if line.strip()]
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "./run-tests", "README.rst %r: not a ./run-tests line" % block
        done = run_shell(command, dict(env, PYTHON=str(stand_in)))
        assert done.returncode == 0, done.stdout
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [call["args"] for call in calls] == [shlex.split(c)[1:] for c in commands]
    for call in calls:
        for minor in pyenv_minors():
            assert call["pythons"].get(minor, "").startswith("Python %s." % minor), call


# --------------------------------------------------------------------------
# The tests.


def test_the_readme_has_code_blocks():
    assert len(BLOCKS) >= 5


def test_every_block_can_be_run():
    known = {"run", "console", "doctest", "server", "client", "run-tests", "skip"}
    unrunnable = [b for b in BLOCKS if b.mode not in known]
    assert not unrunnable, (
        "README.rst blocks with no way to run them (give them a language or a "
        "`.. readme-test:` marker, see tests/test_readme.py): %r" % unrunnable
    )
    for block in BLOCKS:
        if block.mode == "skip":
            assert block.argument, "README.rst %r: a skip needs a reason" % block
        if block.mode in ("server", "client"):
            assert block.argument and block.argument in block.text, block
    clients_alone = [
        b
        for i, b in enumerate(BLOCKS)
        if b.mode == "client" and not any(p.mode == "server" for p in BLOCKS[:i])
    ]
    assert not clients_alone


def clients_after(index):
    clients = []
    for block in BLOCKS[index + 1 :]:
        if block.mode != "client":
            break
        clients.append(block)
    return clients


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[repr(b) for b in BLOCKS])
def test_readme_block(index, python3_on_path, tmp_path):
    block = BLOCKS[index]
    if block.mode == "skip":
        pytest.skip("README.rst %r: %s" % (block, block.argument))
    elif block.mode == "client":
        pytest.skip("run by the server block before it")
    elif block.mode == "server":
        run_server(block, clients_after(index), python3_on_path)
    elif block.mode == "run-tests":
        run_run_tests(block, python3_on_path, tmp_path)
    elif block.mode == "console":
        run_console(block, python3_on_path)
    elif block.mode == "doctest":
        run_doctest(block)
    elif block.mode == "run":
        run_block(block, python3_on_path, tmp_path)
    else:
        pytest.fail("README.rst %r: no way to run it" % block)
