"""The command line's options, messages and exit statuses, checked against both
``python -m smtpd_compat`` and (where a CPython <= 3.11 is found) ``python -m smtpd``."""

import re
import subprocess

import pytest

import smtpd_compat

HELP_HEAD = (
    "An RFC 5321 smtp proxy with optional RFC 1870 and RFC 6531 extensions.\n"
    "\n"
    "Usage: PROGRAM [options] [localhost:localport [remotehost:remoteport]]\n"
    "\n"
    "Options:\n"
)
HELP_TAIL = (
    "Version: Python SMTP proxy version 0.3\n"
    "\n"
    "If localhost is not given then `localhost' is used, and if localport is not\n"
    "given then 8025 is used.  If remotehost is not given then `localhost' is used,\n"
    "and if remoteport is not given, then 25 is used.\n"
    "\n"
)


def run(command, *arguments):
    done = subprocess.run(command + list(arguments), capture_output=True, text=True, timeout=30)
    # The usage text names the program as started (sys.argv[0]): a path that
    # differs between installations, so it is the one thing normalised.
    stderr = re.sub(r"Usage: \S+", "Usage: PROGRAM", done.stderr)
    return done.returncode, done.stdout, stderr


@pytest.mark.parametrize("option", ["-h", "--help"])
def test_help_prints_the_usage_to_stderr_and_exits_0(smtpd_command, option):
    status, stdout, stderr = run(smtpd_command, option)
    assert (status, stdout) == (0, "")
    assert stderr.startswith(HELP_HEAD)
    assert stderr.endswith(HELP_TAIL)
    for flag in (
        "--nosetuid",
        "--version",
        "--class classname",
        "--size limit",
        "--smtputf8",
        "--debug",
        "--help",
    ):
        assert "\n    %s\n" % flag in stderr


@pytest.mark.parametrize("option", ["-V", "--version"])
def test_version_prints_the_proxy_version(smtpd_command, option):
    assert run(smtpd_command, option) == (0, "Python SMTP proxy version 0.3\n", "")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--bogus"], "option --bogus not recognized"),
        (["-n", "localhost"], "Bad local spec: localhost"),
        (["-n", "localhost:xyz"], "Bad local port: localhost:xyz"),
        (["-n", "localhost:8025", "remote"], "Bad remote spec: remote"),
        (["-n", "localhost:8025", "remote:xyz"], "Bad remote port: remote:xyz"),
        (["-n", "a:1", "b:2", "c"], "Invalid arguments: a:1, b:2, c"),
    ],
)
def test_bad_arguments_print_usage_and_the_problem_and_exit_1(smtpd_command, arguments, message):
    status, stdout, stderr = run(smtpd_command, *arguments)
    assert (status, stdout) == (1, "")
    assert stderr.startswith(HELP_HEAD)
    assert stderr.endswith(HELP_TAIL + message + "\n")


def test_invalid_size_prints_only_the_problem_and_exits_1(smtpd_command):
    assert run(smtpd_command, "-n", "-s", "abc") == (1, "", "Invalid size: abc\n")


def test_usage_function_prints_help_and_message_then_exits(capsys):
    with pytest.raises(SystemExit) as exited:
        smtpd_compat.usage(3, "something went wrong")
    assert exited.value.code == 3
    stderr = re.sub(r"Usage: \S+", "Usage: PROGRAM", capsys.readouterr().err)
    assert stderr.startswith(HELP_HEAD)
    assert stderr.endswith(HELP_TAIL + "something went wrong\n")
