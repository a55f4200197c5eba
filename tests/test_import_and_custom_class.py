"""Importing the package, and the command line's ``-c package.module.Class``."""

import smtplib
import subprocess
import sys
import textwrap

import pytest

import smtpd_compat


def test_importing_our_modules_emits_no_deprecation_warning():
    # CPython's smtpd, asyncore and asynchat warn on import; the drop-in must not.
    code = "import smtpd_compat, smtpd_compat.asyncore, smtpd_compat.asynchat"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_public_names_are_those_of_cpython_3_11():
    assert smtpd_compat.__all__ == ["SMTPChannel", "SMTPServer", "DebuggingServer", "PureProxy"]
    assert smtpd_compat.__version__ == "Python SMTP proxy version 0.3"
    assert smtpd_compat.DATA_SIZE_DEFAULT == 33554432
    assert (smtpd_compat.NEWLINE, smtpd_compat.COMMASPACE) == ("\n", ", ")


SINK_MODULE = textwrap.dedent(
    """
    import sys

    # Subclass whichever smtpd is running this process: ours or CPython's.
    smtpd = sys.modules.get("smtpd_compat") or __import__("smtpd")


    class Sink(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            print("received", mailfrom, rcpttos, repr(data), kwargs)
    """
)


@pytest.fixture
def implementation(smtpd_command):
    """Which server ``smtpd_command`` runs: "smtpd_compat" or "cpython"."""
    return "smtpd_compat" if smtpd_command[-1] == "smtpd_compat" else "cpython"


@pytest.mark.parametrize("class_option", ["-c", "--class"])
def test_dotted_class_name_is_imported_and_used(
    smtpd_command, implementation, start_process, tmp_path, monkeypatch, class_option
):
    package = tmp_path / "mailsinks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sink.py").write_text(SINK_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    server = start_process(
        smtpd_command + ["-n", class_option, "mailsinks.sink.Sink", "127.0.0.1:0"]
    )
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.sendmail("a@example.org", ["b@example.net"], "Subject: x\r\n\r\nhello\r\n")
    # Divergence "-s defaults to 33554432" (README.rst): without -s ours offers
    # SIZE and smtplib sends SIZE=<message length>; CPython's offers none.
    mail_options = {"smtpd_compat": "['SIZE=21']", "cpython": "[]"}[implementation]
    expected = (
        "received a@example.org ['b@example.net'] b'Subject: x\\n\\nhello' "
        "{'mail_options': %s, 'rcpt_options': []}\n" % mail_options
    )
    assert server.read_stdout_until("}\n") == expected
    status, _, stderr = server.interrupt()
    assert (status, stderr) == (0, "")
