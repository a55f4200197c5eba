"""examples/mail_sink.py, a pre-3.12 script migrated by changing its imports,
run as a user runs it; and its unmigrated original run on CPython's own
smtpd (where a CPython <= 3.11 is found), which must behave the same."""

import os
import re
import smtplib
import sys

import pytest

from conftest import REPO, reference_python

EXAMPLE = os.path.join(REPO, "examples", "mail_sink.py")
MIGRATED_IMPORTS = "import smtpd_compat as smtpd\nfrom smtpd_compat import asyncore\n"
ORIGINAL_IMPORTS = "import asyncore\nimport smtpd\n"


def example_source():
    with open(EXAMPLE) as source:
        return source.read()


def test_the_migration_changed_only_the_two_import_lines():
    assert example_source().count(MIGRATED_IMPORTS) == 1


@pytest.fixture(params=["migrated", "original on CPython's smtpd"])
def sink_command(request, tmp_path):
    if request.param == "migrated":
        return [sys.executable, EXAMPLE]
    python = reference_python()
    if python is None:
        pytest.skip("no CPython <= 3.11 interpreter found to run the original script")
    original = tmp_path / "mail_sink_original.py"
    original.write_text(example_source().replace(MIGRATED_IMPORTS, ORIGINAL_IMPORTS))
    return [python, "-W", "ignore::DeprecationWarning", str(original)]


def test_mail_sink_saves_each_message_with_its_envelope(sink_command, start_process, tmp_path):
    folder = tmp_path / "mail"
    sink = start_process(sink_command + [str(folder), "127.0.0.1:0"])
    banner = sink.read_stdout_until("\n")
    assert banner == "Listening on 127.0.0.1:%d, saving into %s\n" % (sink.port, folder)

    with smtplib.SMTP("127.0.0.1", sink.port, timeout=20) as client:
        client.sendmail(
            "alice@example.org",
            ["bob@example.net", "carol@example.net"],
            "Subject: first\r\n\r\nHello.\r\n.a line that starts with a dot\r\n",
        )
        client.sendmail(
            "dave@example.org", ["erin@example.net"], "Subject: second\r\n\r\nBye.\r\n"
        )
    output = sink.read_stdout_until("0002.eml")

    assert re.findall(r"saved (\S+) \((\d+) bytes from 127.0.0.1\)", output) == [
        (str(folder / "0001.eml"), "53"),
        (str(folder / "0002.eml"), "21"),
    ]
    assert (folder / "0001.eml").read_text() == (
        "X-Envelope-From: alice@example.org\n"
        "X-Envelope-To: bob@example.net, carol@example.net\n"
        "Subject: first\n\nHello.\n.a line that starts with a dot\n"
    )
    assert (folder / "0002.eml").read_text() == (
        "X-Envelope-From: dave@example.org\n"
        "X-Envelope-To: erin@example.net\n"
        "Subject: second\n\nBye.\n"
    )
    status, rest, stderr = sink.interrupt()
    assert (status, stderr) == (0, "")
    assert rest.endswith("\n2 messages saved\n")
