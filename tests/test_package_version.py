"""The distribution's version: written once, in setup.cfg, and read at run
time (smtpd_compat._package_version).  ``smtpd_compat.__version__`` is
another thing: CPython's proxy version string, which the greeting shows."""

import configparser
import json
import os
import shutil
import subprocess
import sys

import smtpd_compat
from conftest import REPO
from smtpd_compat._package_version import package_version


def setup_cfg_version():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    return config["metadata"]["version"]


def test_the_version_is_the_one_in_setup_cfg():
    assert package_version() == setup_cfg_version()


def test_dunder_version_stays_cpythons_proxy_version():
    assert smtpd_compat.__version__ == "Python SMTP proxy version 0.3"


def version_seen_from(folder):
    """package_version() in a new interpreter that imports the package from
    *folder*, with nothing of smtpd-compat installed on its path."""
    code = "from smtpd_compat._package_version import package_version as v; print(v())"
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, %s); %s" % (json.dumps(str(folder)), code),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(folder),
    )
    assert done.stderr == ""
    return done.stdout.strip()


def copy_of_the_package(folder):
    shutil.copytree(
        os.path.dirname(smtpd_compat.__file__),
        str(folder / "smtpd_compat"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )


def write_setup_cfg(folder, name, version):
    (folder / "setup.cfg").write_text("[metadata]\nname = %s\nversion = %s\n" % (name, version))


def metadata_text(version):
    return "Metadata-Version: 2.1\nName: smtpd-compat\nVersion: %s\n" % version


def test_a_checkout_that_was_never_installed_reads_its_setup_cfg(tmp_path):
    copy_of_the_package(tmp_path)
    write_setup_cfg(tmp_path, "smtpd-compat", "7.8.9")
    assert version_seen_from(tmp_path) == "7.8.9"


def test_a_checkout_beats_stale_metadata_left_in_it(tmp_path):
    copy_of_the_package(tmp_path)
    write_setup_cfg(tmp_path, "smtpd-compat", "2.0.0")
    egg_info = tmp_path / "smtpd_compat.egg-info"
    egg_info.mkdir()
    (egg_info / "PKG-INFO").write_text(metadata_text("1.0.0"))
    assert version_seen_from(tmp_path) == "2.0.0"


def test_installed_metadata_is_used_where_there_is_no_checkout(tmp_path):
    copy_of_the_package(tmp_path)
    dist_info = tmp_path / "smtpd_compat-3.1.4.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(metadata_text("3.1.4"))
    assert version_seen_from(tmp_path) == "3.1.4"


def test_another_projects_setup_cfg_is_not_read(tmp_path):
    copy_of_the_package(tmp_path)
    write_setup_cfg(tmp_path, "vendoring-project", "5.5.5")
    assert version_seen_from(tmp_path) == "unknown"
