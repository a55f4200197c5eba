"""Keeps CASES.rst honest.

* Every test method of CPython's test_smtpd.py, test_asyncore.py and
  test_asynchat.py has exactly one row in CASES.rst, and every row names an
  original that exists.  The originals are read with ``ast`` (never
  imported) from the running interpreter's own ``Lib/test`` when it has
  them, else from the folder named by ``SMTPD_COMPAT_CPYTHON_TESTS``;
  without either this check is skipped.
* Every row points at a ported test function that exists, and at pytest
  node ids that are really collected; every ported test function is named
  by some row.

Counting rule (see CASES.rst): one case per ``def test*`` in the body of a
class of the original module, where it is defined; subclasses that only
inherit it (SMTPDChannelIPv6Test, TestAsynchat_WithPoll, the six TestAPI_*
classes) add runs, listed in the "runs in" column, not cases.
"""

import ast
import os
import re
import subprocess
import sys
import sysconfig
from collections import namedtuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_FILE = os.path.join(HERE, "CASES.rst")
FOLDER_VARIABLE = "SMTPD_COMPAT_CPYTHON_TESTS"

# original file -> file holding its port
PORT_OF = {
    "test_smtpd.py": "test_ported_smtpd.py",
    "test_asyncore.py": "test_ported_asyncore.py",
    "test_asynchat.py": "test_ported_asynchat.py",
}

Row = namedtuple(
    "Row", "original_file original_class method runs_in ported_file ported_function param_ids note"
)


# ---------------------------------------------------------------------------
# Reading CASES.rst
# ---------------------------------------------------------------------------

_EMPTY_CELL = "\N{EM DASH}"


def _list_table_rows(text):
    """Yield the cells of each row of every ``list-table`` in ``text``."""
    row = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("* - "):
            if row is not None:
                yield row
            row = [stripped[4:].strip()]
        elif stripped.startswith("- ") and row is not None:
            row.append(stripped[2:].strip())
        elif stripped == "-" and row is not None:
            row.append("")
        elif not stripped or not line.startswith(" "):
            if row is not None:
                yield row
                row = None
    if row is not None:
        yield row


def _split_list(cell):
    if cell in ("", _EMPTY_CELL):
        return ()
    return tuple(part.strip() for part in cell.split(",") if part.strip())


def read_cases(path=CASES_FILE):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rows = []
    for cells in _list_table_rows(text):
        original = cells[0].strip("`")
        if original.count("::") != 2 or not original.startswith("test_"):
            continue  # header row or another table
        assert len(cells) == 5, "CASES.rst row has %d cells: %r" % (len(cells), cells)
        original_file, original_class, method = original.split("::")
        ported = cells[2].strip("`")
        ported_file, _, ported_function = ported.partition("::")
        rows.append(
            Row(
                original_file,
                original_class,
                method,
                _split_list(cells[1]),
                ported_file,
                ported_function,
                tuple(p.strip("`[]") for p in _split_list(cells[3])),
                cells[4],
            )
        )
    return text, rows


# ---------------------------------------------------------------------------
# Reading CPython's originals
# ---------------------------------------------------------------------------


def find_originals_folder():
    """Return (folder or None, description of where it looked)."""
    own = os.path.join(sysconfig.get_path("stdlib"), "test")
    if all(os.path.isfile(os.path.join(own, name)) for name in PORT_OF):
        return own, own
    named = os.environ.get(FOLDER_VARIABLE)
    if named and all(os.path.isfile(os.path.join(named, name)) for name in PORT_OF):
        return named, named
    return None, "%s (no test_smtpd.py) and $%s=%r" % (own, FOLDER_VARIABLE, named)


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return _dotted(node.value) + "." + node.attr
    return ""


def original_tests(path):
    """Map (class, method) -> sorted TestCase classes that run it, for one file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    bases = {name: [_dotted(b) for b in node.bases] for name, node in classes.items()}

    def ancestry(name):
        seen = [name]
        for base in bases.get(name, ()):
            if base in classes:
                seen.extend(ancestry(base))
        return seen

    def is_test_case(name):
        return any(
            base in ("unittest.TestCase", "TestCase")
            for cls in ancestry(name)
            for base in bases.get(cls, ())
        )

    runners = {name: set(ancestry(name)) for name in classes if is_test_case(name)}
    found = {}
    for name, node in classes.items():
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith(
                "test"
            ):
                found[(name, item.name)] = tuple(
                    sorted(runner for runner, lineage in runners.items() if name in lineage)
                )
    return found


# ---------------------------------------------------------------------------
# Reading the ported files
# ---------------------------------------------------------------------------


def ported_test_functions(filename):
    with open(os.path.join(HERE, filename), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
    }


def collected_node_ids():
    """Node ids pytest collects from the ported files, as 'file::name[id]'."""
    paths = [os.path.join(HERE, name) for name in sorted(PORT_OF.values())]
    env = dict(os.environ)
    # Let the child import whatever this interpreter can import now.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            HERE,
        ]
        + paths,
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    ids = set()
    for line in completed.stdout.splitlines():
        line = line.strip()
        if "::" in line and line.split("::")[0].endswith(".py"):
            ids.add(os.path.basename(line.split("::")[0]) + "::" + line.split("::", 1)[1])
    return completed, ids


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases():
    return read_cases()


def test_cases_table_rows_are_well_formed(cases):
    text, rows = cases
    assert rows, "no case rows found in CASES.rst"
    keys = [(r.original_file, r.original_class, r.method) for r in rows]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    assert duplicated == [], "originals listed twice: %r" % duplicated
    for row in rows:
        assert PORT_OF.get(row.original_file) == row.ported_file, row
        assert row.runs_in, "row without 'runs in' classes: %r" % (row,)
    stated = re.search(r"Total mapped cases:\s*\*\*(\d+)\*\*", text)
    assert stated, "CASES.rst must state 'Total mapped cases: **N**'"
    assert int(stated.group(1)) == len(rows)


def test_every_original_test_has_exactly_one_case_row(cases):
    folder, looked = find_originals_folder()
    if folder is None:
        pytest.skip("CPython's original test files not found; looked in " + looked)
    _, rows = cases
    listed = {(r.original_file, r.original_class, r.method): r.runs_in for r in rows}
    originals = {}
    for filename in PORT_OF:
        for (cls, method), runs_in in original_tests(os.path.join(folder, filename)).items():
            originals[(filename, cls, method)] = runs_in
    missing = sorted(set(originals) - set(listed))
    unknown = sorted(set(listed) - set(originals))
    assert missing == [], "original tests without a CASES.rst row: %r" % missing
    assert unknown == [], "CASES.rst rows for tests not in %s: %r" % (folder, unknown)
    wrong_runs = sorted(
        (key, listed[key], originals[key])
        for key in originals
        if tuple(sorted(listed[key])) != originals[key]
    )
    assert wrong_runs == [], "'runs in' column differs (key, CASES, original): %r" % wrong_runs
    assert len(rows) == len(originals)


def test_every_case_row_names_an_existing_ported_function(cases):
    _, rows = cases
    defined = {name: ported_test_functions(name) for name in PORT_OF.values()}
    dangling = sorted(
        "%s::%s" % (r.ported_file, r.ported_function)
        for r in rows
        if r.ported_function not in defined[r.ported_file]
    )
    assert dangling == [], "CASES.rst names ported tests that do not exist: %r" % dangling


def test_every_ported_test_function_is_named_by_a_case_row(cases):
    _, rows = cases
    mapped = {(r.ported_file, r.ported_function) for r in rows}
    orphans = sorted(
        "%s::%s" % (name, fn)
        for name in PORT_OF.values()
        for fn in ported_test_functions(name)
        if (name, fn) not in mapped
    )
    assert orphans == [], "ported tests missing from CASES.rst: %r" % orphans


def test_every_case_row_names_collected_parameter_ids(cases):
    _, rows = cases
    completed, ids = collected_node_ids()
    collected_files = {node_id.split("::")[0] for node_id in ids}
    not_collected = sorted(set(PORT_OF.values()) - collected_files)
    if not_collected:
        if re.search(r"\bskipped\b", completed.stdout, re.I) and completed.returncode in (0, 5):
            pytest.skip(
                "ported modules skipped under this implementation, so their "
                "parameter ids cannot be listed: %s" % ", ".join(not_collected)
            )
        pytest.fail("collecting the ported tests failed:\n" + completed.stdout[-3000:])
    expected = set()
    for row in rows:
        base = "%s::%s" % (row.ported_file, row.ported_function)
        if row.param_ids:
            expected.update("%s[%s]" % (base, p) for p in row.param_ids)
        else:
            expected.add(base)
    assert sorted(expected - ids) == [], "CASES.rst names node ids pytest does not collect"
    assert sorted(ids - expected) == [], "collected node ids missing from CASES.rst"
