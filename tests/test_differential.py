"""Differential test: smtpd_compat against CPython's own smtpd, session by session.

Generated client sessions (tests/differential.py) are played over loopback sockets
against CPython's smtpd (under a CPython <= 3.11) and against smtpd_compat (under
this interpreter); replies and process_message calls must be the same, except in
the named, known divergences of ``differential.DIVERGENCES``. The summary (sessions
run, compared equal, excluded per divergence, mismatches with reproductions) is
printed in every run.

The normal run plays 900 sessions from a fixed seed. A long run:

    SMTPD_COMPAT_DIFF_SESSIONS=10000 python -m pytest tests/test_differential.py

(or ``--sessions 10000`` where tests/conftest.py has the options hook), and without
pytest: ``python tests/differential.py 10000 [SEED]``.

Other knobs (environment): ``SMTPD_COMPAT_DIFF_SEED`` (another seed),
``SMTPD_COMPAT_DIFF_ONLY=17,42`` (replay those sessions only),
``SMTPD_COMPAT_DIFF_CANDIDATE=cpython`` (CPython on both sides: checks the harness
and that the reference is deterministic; must give 0 mismatches),
``SMTPD_COMPAT_DIFF_STRICT=1`` (compare the sessions of not-yet-fixed divergences
too), ``SMTPD_COMPAT_REFERENCE_PYTHON`` (the reference interpreter),
``SMTPD_COMPAT_DIFF_SHOW=N`` (mismatches spelled out, default 10) and
``SMTPD_COMPAT_DIFF_REPORT=path`` (also write the whole summary there).
"""

import ast
import os
import re
import shutil
import sys

import pytest

import differential as diff

SESSIONS = int(os.environ.get("SMTPD_COMPAT_DIFF_SESSIONS", diff.DEFAULT_SESSIONS))
SEED = os.environ.get("SMTPD_COMPAT_DIFF_SEED", str(diff.DEFAULT_SEED))

# The default run takes well under a minute; give long runs room (pytest-timeout).
pytestmark = pytest.mark.timeout(max(300, SESSIONS))


def test_candidate_replies_like_cpython_smtpd(capsys):
    try:
        reference, candidate = diff.sides()
    except LookupError as missing:
        pytest.skip(str(missing))
    self_check = diff.candidate_is_cpython()
    report = diff.run_differential(SEED, SESSIONS, reference, candidate, self_check)
    summary = report.summary(limit=int(os.environ.get("SMTPD_COMPAT_DIFF_SHOW", "10")))
    path = os.environ.get("SMTPD_COMPAT_DIFF_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            out.write(report.summary(limit=len(report.mismatches)) + "\n")
    with capsys.disabled():
        print("\n" + summary)
    assert report.sessions == len(diff._sessions_from_environment(SEED, SESSIONS))
    assert not report.mismatches, summary


# Differences planted in a copy of smtpd_compat: (file, text appended to it, what).
PLANTED = [
    ("__init__.py", "\nNEWLINE = '\\r\\n'\n", "decode_data messages joined with CRLF"),
    (
        "__init__.py",
        (
            "\n_planted_push = SMTPChannel.push\n"
            "def _push(self, msg):\n"
            "    _planted_push(self, msg.replace('need RCPT', 'need a RCPT'))\n"
            "SMTPChannel.push = _push\n"
        ),
        "one reply's wording",
    ),
]


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p[2])
def test_the_harness_sees_a_planted_difference(planted, tmp_path):
    """Guards against a harness that compares nothing: a copy of smtpd_compat with
    one small change must give mismatches."""
    try:
        reference, _ = diff.sides()
    except LookupError as missing:
        pytest.skip(str(missing))
    if diff.candidate_is_cpython():
        pytest.skip("the candidate is CPython's smtpd in this run")
    copy = tmp_path / "smtpd_compat"
    shutil.copytree(
        os.path.join(diff.REPO, "smtpd_compat"),
        str(copy),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    filename, addition, _ = planted
    with open(str(copy / filename), "a", encoding="utf-8") as source:
        source.write(addition)
    sessions = [s for s in diff.generate_sessions(SEED, 200) if s.options.decode_data][:30]
    report = diff.run_differential(
        SEED,
        0,
        reference,
        (sys.executable, "compat"),
        False,
        sessions=sessions,
        candidate_path=str(tmp_path),
    )
    assert report.mismatches, report.summary()


SCENARIO_OPTIONS = [diff.Options("default", False, False), diff.Options("default", False, True)]


@pytest.mark.parametrize("options", SCENARIO_OPTIONS, ids=str)
@pytest.mark.parametrize("scenario", diff.SHARED_LIMIT_SCENARIOS, ids=lambda s: s.name)
def test_connections_sharing_one_server(scenario, options, capsys):
    try:
        reference, candidate = diff.sides()
    except LookupError as missing:
        pytest.skip(str(missing))
    divergence = diff.divergence_named("cpython-command-size-limits-shared")
    outcomes = []
    for name, (python, impl) in (("reference", reference), ("candidate", candidate)):
        server = diff.ServerProcess(name, python, impl, options)
        try:
            server.launch()
            server.wait_ready()
            outcomes.append(diff.play_scenario(server, scenario))
        finally:
            server.close()
    ref, cand = outcomes
    # CPython does have the bug this scenario shows.
    assert diff.last_reply(ref["A"]) == scenario.cpython_reply, ref["A"].describe()
    comparable = lambda side: {name: o.comparable() for name, o in side.items()}  # noqa: E731
    if diff.candidate_is_cpython() or diff.strict_mode():
        assert comparable(cand) == comparable(ref)
    elif divergence.status == "pending":
        with capsys.disabled():
            print(
                "\nexcluded by %s: %s (%s); candidate %s"
                % (
                    divergence.name,
                    scenario.name,
                    options,
                    "byte-identical anyway" if comparable(cand) == comparable(ref) else "differs",
                )
            )
    else:
        assert diff.last_reply(cand["A"]) == scenario.fixed_reply, cand["A"].describe()
        assert cand["A"].reply_lines()[:-1] == ref["A"].reply_lines()[:-1]
        assert comparable(cand)["B"] == comparable(ref)["B"]


# --------------------------------------------------------------------------
# The harness's own parts, without servers.


def test_sessions_are_the_same_for_the_same_seed():
    first = [s.chunks for s in diff.generate_sessions("a seed", 50)]
    again = [s.chunks for s in diff.generate_sessions("a seed", 50)]
    other = [s.chunks for s in diff.generate_sessions("another seed", 50)]
    assert first == again
    assert first != other


def test_the_default_sessions_cover_the_grammar():
    sessions = diff.generate_sessions(SEED, diff.DEFAULT_SESSIONS)
    data = [s.data for s in sessions]
    plans = " | ".join(s.plan for s in sessions)

    def some(predicate):
        return any(predicate(d) for d in data)

    for options in diff.OPTION_SETS:
        assert sum(s.options == options for s in sessions) >= 30, options
    for phrase in (
        "byte by byte",
        "one by one",
        "all in one write",
        "split inside CRLFs",
        "a write per line",
        "random splits",
        "a write per transaction",
        "commands after QUIT",
        "cut mid-DATA",
        "cut mid-line",
        "shuffled",
    ):
        assert phrase in plans, phrase
    lines = [line for d in data for line in d.split(b"\r\n")]
    for verb in (
        b"HELO",
        b"EHLO",
        b"MAIL",
        b"RCPT",
        b"DATA",
        b"RSET",
        b"NOOP",
        b"QUIT",
        b"HELP",
        b"VRFY",
        b"EXPN",
        b"FOO",
    ):
        assert any(line.upper().startswith(verb) for line in lines), verb
    assert any(line[:4] in (b"mail", b"ehlo", b"rcpt") for line in lines)  # lower case
    for length in (512, 513, 538, 539, 548, 549):
        assert any(len(line) == length for line in lines), length
    assert some(lambda d: b"<>" in d)
    assert some(lambda d: b"<@relay.example:" in d)
    assert some(lambda d: b'"quoted local"' in d)
    assert some(lambda d: re.search(rb"(?i)FROM: ?[a-z0-9.+_]+@", d))  # bare address
    for parameter in (b"SIZE=", b"BODY=", b"SMTPUTF8", b"XFOO"):
        assert some(lambda d, parameter=parameter: parameter in d), parameter
    assert some(lambda d: b"\r\n..\r\n" in d or b"\r\n.leading" in d)  # dot-stuffing
    assert some(lambda d: re.search(rb"[^\r]\n", d))  # bare LF
    assert some(lambda d: re.search(rb"\r[^\n]", d))  # bare CR
    assert some(lambda d: b"DATA\r\n.\r\n" in d.upper())  # empty body
    assert some(lambda d: b"\xff" in d)  # not UTF-8
    assert some(lambda d: "é".encode() in d)  # UTF-8


def test_transcript_follows_cpython_framing():
    data = (
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nbody\r\n.\r\nQUIT\r\nNOOP\r\n"
    )
    replies = [
        b"220 h Python SMTP proxy version 0.3",
        b"250-h",
        b"250 HELP",
        b"250 OK",
        b"250 OK",
        b"354 End data with <CR><LF>.<CR><LF>",
        b"250 OK",
        b"221 Bye",
    ]
    greeting, steps = diff.transcript(data, replies)
    assert greeting == [replies[0]]
    assert [(s.kind, s.text, s.code) for s in steps] == [
        ("command", b"EHLO x", 250),
        ("command", b"MAIL FROM:<a@b>", 250),
        ("command", b"RCPT TO:<c@d>", 250),
        ("command", b"DATA", 354),
        ("data", b".\r\nbody", 250),  # the dot right after DATA does not end it
        ("command", b"QUIT", 221),
        ("after-quit", b"NOOP\r\n", None),
    ]
    assert all(data[s.start : s.stop].startswith(s.text) for s in steps)


def test_divergence_predicates_on_hand_made_outcomes():
    options = diff.Options("default", False, False)

    def steps_for(session, replies):
        return diff.transcript(session.data, replies)[1]

    empty = diff.Session(
        0, options, [b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n"], ""
    )
    replies = [b"220 h", b"250 h", b"250 OK", b"250 OK", b"354 End data with <CR><LF>.<CR><LF>"]
    outcome = diff.Outcome(b"\r\n".join(replies) + b"\r\n")
    assert diff._empty_data(empty, outcome, steps_for(empty, replies))

    crash = diff.Session(1, options, [b"HELO x\r\nMAIL FROM:<\r\nNOOP\r\n"], "")
    replies = [b"220 h", b"250 h"]
    outcome = diff.Outcome(
        b"\r\n".join(replies) + b"\r\n", [{"event": "error", "exception": "IndexError", "port": 1}]
    )
    steps = steps_for(crash, replies)
    assert diff._bad_address(crash, outcome, steps)
    assert not diff._undecodable_command(crash, outcome, steps)

    # The fixed behaviour's check: a 501 where CPython dropped, and the session goes on.
    fixed = diff.Outcome(b"220 h\r\n250 h\r\n501 Syntax: MAIL FROM: <address>\r\n250 OK\r\n")
    check = diff.divergence_named("cpython-crashes-on-bad-address").check
    assert check(crash, outcome, fixed, steps) is None
    same_crash = diff.Outcome(outcome.replies, outcome.records)
    assert "expected a 501" in check(crash, outcome, same_crash, steps)

    split = diff.Session(2, diff.Options("default", True, False), [b"HELO \xc3", b"\xa9\r\n"], "")
    assert diff._utf8_split_across_writes(split, outcome, [])


def test_fixed_divergence_checks_refuse_cpythons_own_behaviour():
    options = diff.Options("default", False, False)
    data = b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nQUIT\r\nNOOP\r\n"
    session = diff.Session(3, options, [data], "")
    go_ahead = b"354 End data with <CR><LF>.<CR><LF>\r\n"
    cpython = diff.Outcome(b"220 h\r\n250 h\r\n250 OK\r\n250 OK\r\n" + go_ahead)
    steps = diff.transcript(session.data, cpython.reply_lines())[1]
    check = diff.divergence_named("cpython-never-answers-empty-data").check
    assert "then 250 OK" in check(session, cpython, cpython, steps)
    empty_message = {
        "event": "message",
        "port": 1,
        "peer": None,
        "mailfrom": {"str": "a@b"},
        "rcpttos": {"list": [{"str": "c@d"}]},
        "data": {"bytes": ""},
        "kwargs": {},
    }
    fixed = diff.Outcome(cpython.replies + b"250 OK\r\n221 Bye\r\n", [empty_message])
    assert check(session, cpython, fixed, steps) is None

    quit_first = diff.Session(4, options, [b"HELO x\r\nQUIT\r\nMAIL FROM:<a@b>\r\n"], "")
    cpython = diff.Outcome(b"220 h\r\n250 h\r\n221 Bye\r\n")
    steps = diff.transcript(quit_first.data, cpython.reply_lines())[1]
    check = diff.divergence_named("cpython-runs-commands-after-quit").check
    assert check(quit_first, cpython, cpython, steps) is None
    answered = diff.Outcome(cpython.replies + b"250 OK\r\n")
    assert "expected only" in check(quit_first, cpython, answered, steps)


def test_comparison_sees_every_kind_of_difference():
    base = diff.Outcome(
        b"220 a.example Python SMTP proxy version 0.3\r\n250 OK\r\n",
        [
            {"event": "connect", "port": 5, "fqdn": "a.example"},
            {
                "event": "message",
                "port": 5,
                "peer": {"tuple": [{"str": "127.0.0.1"}, {"int": 5}]},
                "data": {"bytes": "x"},
            },
        ],
    )
    other_host = diff.Outcome(
        b"220 b.example Python SMTP proxy version 0.3\r\n250 OK\r\n",
        [
            {"event": "connect", "port": 9, "fqdn": "b.example"},
            {
                "event": "message",
                "port": 9,
                "peer": {"tuple": [{"str": "127.0.0.1"}, {"int": 9}]},
                "data": {"bytes": "x"},
            },
        ],
    )
    assert base.comparable() == other_host.comparable()  # fqdn and peer normalised
    as_str = diff.Outcome(
        base.replies, [base.records[0], dict(base.records[1], data={"str": "x"})]
    )
    assert base.comparable() != as_str.comparable()
    more = diff.Outcome(base.replies + b"250 OK\r\n", base.records)
    assert base.comparable() != more.comparable()
    dropped = diff.Outcome(
        base.replies, base.records + [{"event": "error", "exception": "E", "port": 5}]
    )
    assert base.comparable() != dropped.comparable()


def test_reproductions_are_python_that_gives_the_chunks_back():
    for session in diff.generate_sessions(SEED, 60):
        namespace = {}
        exec(compile(session.reproduction(), "<reproduction>", "exec"), namespace)
        assert namespace["chunks"] == session.chunks
        ast.parse(session.reproduction())
