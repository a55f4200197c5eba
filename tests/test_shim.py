"""smtpd_compat.shim.install(): ``import smtpd`` / ``asyncore`` / ``asynchat``
for code that cannot be changed.  Each case runs in a fresh interpreter, whose
sys.modules no other test has touched."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

STDLIB_HAS_SMTPD = sys.version_info < (3, 12)


def run_python(code, tmp_path, extra_path=(), report=True):
    """Run *code* in a new interpreter, then (if *report*) REPORT; return
    what it printed, as JSON."""
    env_path = ":".join([*extra_path, REPO])
    code = textwrap.dedent(code) + (REPORT if report else "")
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# What the code run left in `registered`, and where the three names lead.
REPORT = """
import json, sys
def origin(name):
    module = sys.modules.get(name)
    if module is None:
        return None
    return "ours" if module.__name__.startswith("smtpd_compat") else "other"
print(json.dumps({"registered": sorted(registered),
                  "origins": [origin(n) for n in ("smtpd", "asyncore", "asynchat")]}))
"""


def test_install_registers_ours_only_where_python_lacks_smtpd(tmp_path):
    result = run_python(
        """
        import smtpd_compat.shim
        registered = smtpd_compat.shim.install()
        import smtpd, asyncore, asynchat
    """,
        tmp_path,
    )
    if STDLIB_HAS_SMTPD:
        assert result == {"registered": [], "origins": ["other", "other", "other"]}
    else:
        assert result == {
            "registered": ["asynchat", "asyncore", "smtpd"],
            "origins": ["ours", "ours", "ours"],
        }


def test_install_with_force_registers_ours_on_every_python(tmp_path):
    result = run_python(
        """
        import smtpd_compat.shim
        registered = smtpd_compat.shim.install(force=True)
        import smtpd, asyncore, asynchat
        assert smtpd.asyncore is asyncore and asynchat.asyncore is asyncore
    """,
        tmp_path,
    )
    assert result == {
        "registered": ["asynchat", "asyncore", "smtpd"],
        "origins": ["ours", "ours", "ours"],
    }


def test_installing_twice_registers_nothing_the_second_time(tmp_path):
    result = run_python(
        """
        import smtpd_compat.shim
        first = smtpd_compat.shim.install(force=True)
        registered = smtpd_compat.shim.install(force=True)
        assert smtpd_compat.shim.install() == {}
    """,
        tmp_path,
    )
    assert result == {"registered": [], "origins": ["ours", "ours", "ours"]}


def test_ours_win_over_a_separate_asyncore_backport_on_the_path(tmp_path):
    # As the pyasyncore distribution would provide on 3.12+: our smtpd runs
    # only on our loop, so the three come as a set.
    backport = tmp_path / "backport"
    backport.mkdir()
    (backport / "asyncore.py").write_text("BACKPORT = True\n")
    result = run_python(
        """
        import smtpd_compat.shim
        registered = smtpd_compat.shim.install(force=True)
        import asyncore
        assert not hasattr(asyncore, "BACKPORT")
    """,
        tmp_path,
        extra_path=[str(backport)],
    )
    assert result["origins"] == ["ours", "ours", "ours"]


def test_an_asyncore_imported_before_install_is_refused_not_mixed(tmp_path):
    result = run_python(
        """
        import json, sys, types
        sys.modules["asyncore"] = types.ModuleType("asyncore")
        import smtpd_compat.shim
        try:
            smtpd_compat.shim.install(force=True)
        except RuntimeError as error:
            message = str(error)
        print(json.dumps({"message": message, "smtpd": "smtpd" in sys.modules}))
    """,
        tmp_path,
        report=False,
    )
    assert result == {
        "message": "smtpd_compat.shim.install(): asyncore already imported from elsewhere;"
        " call install() before anything imports them",
        "smtpd": False,
    }


LIBRARY = '''
"""Stands for a third-party library written before 3.12: it is not changed."""
import asyncore
import smtpd


class Collector(smtpd.SMTPServer):
    def __init__(self, *args, **kwargs):
        smtpd.SMTPServer.__init__(self, *args, **kwargs)
        self.messages = []

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.messages.append((mailfrom, rcpttos, data))


def serve_until(server, done, deadline):
    import time
    while not done() and time.monotonic() < deadline:
        asyncore.loop(timeout=0.05, count=1)
'''


@pytest.mark.parametrize("force", [False, True])
def test_an_unchanged_library_receives_mail_after_install(tmp_path, force):
    (tmp_path / "oldlibrary.py").write_text(LIBRARY)
    result = run_python(
        """
        import json, smtplib, threading, time
        import smtpd_compat.shim
        smtpd_compat.shim.install(force=%s)
        import oldlibrary

        server = oldlibrary.Collector(("127.0.0.1", 0), None)
        port = server.socket.getsockname()[1]
        def send():
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                client.sendmail("a@example.org", ["b@example.net"],
                                "Subject: x\\r\\n\\r\\nhi\\r\\n")
        sender = threading.Thread(target=send)
        sender.start()
        oldlibrary.serve_until(server, lambda: not sender.is_alive(), time.monotonic() + 20)
        sender.join(20)
        print(json.dumps({"messages": [[m, r, d.decode()] for m, r, d in server.messages],
                          "ours": type(server).__mro__[1].__module__ == "smtpd_compat"}))
    """
        % force,
        tmp_path,
        extra_path=[str(tmp_path)],
        report=False,
    )
    assert result["messages"] == [["a@example.org", ["b@example.net"], "Subject: x\n\nhi"]]
    assert result["ours"] == (force or not STDLIB_HAS_SMTPD)
