"""``smtpd_compat.pytest_plugin``: the opt-in ``smtpd_server`` fixture."""

import os
import smtplib
import subprocess
import sys
import textwrap

import pytest

from extension_support import WAIT_SECONDS
from smtpd_compat import pytest_plugin

# The plugin's fixtures, for this module only (the rest of the suite does
# not enable the plugin).
smtpd_server = pytest_plugin.smtpd_server
smtpd_server_options = pytest_plugin.smtpd_server_options


def test_the_fixture_yields_a_running_server_that_records_messages(smtpd_server):
    with smtplib.SMTP(smtpd_server.host, smtpd_server.port, timeout=WAIT_SECONDS) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], "Subject: s\r\n\r\nhello")
    [message] = smtpd_server.messages
    assert (message.mailfrom, message.rcpttos, message.data) == (
        "a@example.org",
        ["b@example.org"],
        b"Subject: s\n\nhello",
    )
    assert message.kwargs == {"mail_options": ["SIZE=19"], "rcpt_options": []}


class TestOptions:
    @pytest.fixture
    def smtpd_server_options(self):
        return {"data_size_limit": 10}

    def test_overriding_smtpd_server_options_configures_the_server(self, smtpd_server):
        with smtplib.SMTP(smtpd_server.host, smtpd_server.port, timeout=WAIT_SECONDS) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.sendmail("a@example.org", ["b@example.org"], "far more than ten bytes")
        assert smtpd_server.messages == []


def test_the_plugin_is_enabled_with_dash_p(tmp_path):
    (tmp_path / "test_uses_it.py").write_text(
        textwrap.dedent("""
        import smtplib

        def test_send(smtpd_server):
            smtplib.SMTP(smtpd_server.host, smtpd_server.port, timeout=10).sendmail(
                "a@example.org", ["b@example.org"], "hi")
            assert len(smtpd_server.messages) == 1
    """)
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "smtpd_compat.pytest_plugin",
        "--rootdir",
        str(tmp_path),
        "-c",
        os.devnull,
        str(tmp_path),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
