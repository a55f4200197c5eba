"""``python -m smtpd_compat --version-info``: one line naming the package's
version (setup.cfg's), CPython's proxy version string and the Python that
runs it, then exit 0.  ``-V`` and ``--help`` stay CPython's
(tests/test_cli_options.py compares them with CPython's smtpd)."""

import configparser
import os
import platform
import subprocess
import sys

import pytest

from conftest import REPO

COMMAND = [sys.executable, "-m", "smtpd_compat"]


def setup_cfg_version():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    return config["metadata"]["version"]


def version_info_line():
    return "smtpd-compat %s (Python SMTP proxy version 0.3) on Python %s\n" % (
        setup_cfg_version(),
        platform.python_version(),
    )


def run(*arguments):
    """(exit status, stdout, stderr) of the command line, run from the
    checkout under test.  A server that started instead would never exit:
    the timeout fails the test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    done = subprocess.run(
        COMMAND + list(arguments),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


def test_version_info_prints_package_proxy_and_python_versions_and_exits_0():
    assert run("--version-info") == (0, version_info_line(), "")


def test_version_info_may_be_abbreviated_as_getopt_allows():
    assert run("--version-i") == (0, version_info_line(), "")


def test_version_info_with_other_options_and_addresses_prints_and_starts_no_server():
    assert run(
        "-n",
        "-c",
        "DebuggingServer",
        "--timeout",
        "5",
        "--workers",
        "2",
        "--version-info",
        "127.0.0.1:0",
    ) == (0, version_info_line(), "")


def test_option_values_are_not_checked_when_version_info_is_given():
    assert run("--timeout", "soon", "-s", "abc", "--version-info") == (
        0,
        version_info_line(),
        "",
    )


@pytest.mark.parametrize(
    "arguments",
    [
        ["--version-info", "-V"],
        ["-V", "--version-info"],
        ["--version", "--version-info"],
        ["-h", "--version-info"],
        ["--version-info", "--help"],
    ],
)
def test_version_info_wins_over_version_and_help_in_any_order(arguments):
    assert run(*arguments) == (0, version_info_line(), "")


def test_version_info_after_an_address_is_read_as_the_remote_address_as_v_is():
    # getopt stops at the first address; CPython's -V is read the same way.
    status, stdout, stderr = run("127.0.0.1:8025", "--version-info")
    assert (status, stdout) == (1, "")
    assert "\nUsage: " in stderr
    assert stderr.endswith("\nBad remote spec: --version-info\n")


def test_version_info_with_a_value_prints_usage_and_the_problem_and_exits_1():
    status, stdout, stderr = run("--version-info=yes")
    assert (status, stdout) == (1, "")
    assert "\nUsage: " in stderr
    assert stderr.endswith("\noption --version-info must not have an argument\n")


@pytest.mark.parametrize(
    "arguments",
    [["--version-info", "--bogus"], ["--bogus", "--version-info"]],
)
def test_an_unknown_option_next_to_version_info_is_the_one_reported(arguments):
    status, stdout, stderr = run(*arguments)
    assert (status, stdout) == (1, "")
    assert "\nUsage: " in stderr
    assert stderr.endswith("\noption --bogus not recognized\n")


def test_an_unknown_option_after_an_extension_option_is_the_one_reported():
    status, stdout, stderr = run("--timeout", "5", "--bogus")
    assert (status, stdout) == (1, "")
    assert stderr.endswith("\noption --bogus not recognized\n")


@pytest.mark.parametrize("abbreviation", ["--v", "--vers", "--versio"])
def test_an_abbreviation_of_version_still_means_version(abbreviation):
    # Ambiguous between --version and --version-info, but CPython's smtpd
    # knows only --version, and read it so.
    assert run(abbreviation) == (0, "Python SMTP proxy version 0.3\n", "")
