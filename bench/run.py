"""Benchmark: smtpd_compat against CPython 3.11's smtpd and aiosmtpd.

    python3 bench/run.py [--quick] [--rounds N] [--only REGEX] [--targets NAME,...]

Each target is a sink server (bench/server.py) started afresh on 127.0.0.1
for every measurement, under the interpreter it names:

    cpython-3.11     CPython's own smtpd (the reference: every ratio is to it)
    compat-3.13      smtpd_compat from this checkout
    compat-3.11
    aiosmtpd-3.13    aiosmtpd, installed into a venv of the benchmark's own
    compat-3.13-w2   smtpd_compat with --workers 2 (throughput rows only)

and driven by Postfix's smtp-source (unpacked from Debian's package into the
cache folder if it is not installed) or by the Python clients in
bench/load.py.  Server CPU is utime+stime from /proc/<pid>/stat, memory is
VmRSS/VmHWM from /proc/<pid>/status, summed over the server's processes.
Rounds run the workloads in turn and the targets interleaved within each
workload; the table shows the median of the rounds, and next to each value
its ratio to cpython-3.11 in the same run.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import load

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REFERENCE = 'cpython-3.11'
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
KIB, MIB = 1024, 1024 * 1024


# ---------------------------------------------------------------------------
# Interpreters and targets


def pyenv_python(minor):
    """The newest pyenv-installed CPython ``minor`` (e.g. "3.13"), or None."""
    root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    if shutil.which('pyenv'):
        found = subprocess.run(['pyenv', 'root'], capture_output=True, text=True)
        root = found.stdout.strip() or root
    pattern = os.path.join(root, 'versions', minor + '.*', 'bin', 'python' + minor)
    candidates = [
        path
        for path in glob.glob(pattern)
        if os.path.basename(os.path.dirname(os.path.dirname(path)))[len(minor) + 1 :].isdigit()
    ]
    candidates.sort(key=lambda path: int(path.split(os.sep)[-3].split('.')[2]))
    if candidates:
        return candidates[-1]
    return shutil.which('python' + minor)


def aiosmtpd_python(base, cache):
    """A venv interpreter (made from ``base``) with aiosmtpd installed."""
    venv = os.path.join(cache, 'venv-aiosmtpd')
    python = os.path.join(venv, 'bin', 'python')
    check = [python, '-c', 'import aiosmtpd']
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print('installing aiosmtpd into %s ...' % venv, file=sys.stderr)
    subprocess.run([base, '-m', 'venv', venv], check=True)
    pip = [python, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', 'aiosmtpd']
    if subprocess.run(pip).returncode != 0:
        return None
    return python


Target = collections.namedtuple('Target', 'name python impl workers')


def make_targets(options):
    py313 = options.py313 or pyenv_python('3.13')
    py311 = options.py311 or pyenv_python('3.11')
    targets, missing = [], []
    if py311:
        targets.append(Target(REFERENCE, py311, 'cpython', 1))
    else:
        missing.append('%s (no Python 3.11 found: ratios are not available)' % REFERENCE)
    if py313:
        targets.append(Target('compat-3.13', py313, 'compat', 1))
    if py311:
        targets.append(Target('compat-3.11', py311, 'compat', 1))
    if py313:
        aio = aiosmtpd_python(py313, options.cache)
        if aio:
            targets.append(Target('aiosmtpd-3.13', aio, 'aiosmtpd', 1))
        else:
            missing.append('aiosmtpd-3.13 (pip install aiosmtpd failed)')
        targets.append(Target('compat-3.13-w2', py313, 'compat', 2))
    else:
        missing.append('compat-3.13, aiosmtpd-3.13 (no Python 3.13 found)')
    if options.targets:
        wanted = options.targets.split(',')
        targets = [target for target in targets if target.name in wanted]
    return targets, missing


# ---------------------------------------------------------------------------
# A running server and its processes


class Server:
    def __init__(self, target):
        argv = [
            target.python,
            os.path.join(HERE, 'server.py'),
            '--impl',
            target.impl,
            '--workers',
            str(target.workers),
            '--repo',
            REPO,
        ]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        line = self.process.stdout.readline().split()
        if not line or line[0] != b'READY':
            self.stop()
            raise RuntimeError('%s did not start' % target.name)
        self.port = int(line[1])
        self.pids = [int(pid) for pid in line[2].split(b',')]

    def alive(self):
        return self.process.poll() is None

    def cpu_seconds(self):
        ticks = 0
        for pid in self.pids:
            try:
                with open('/proc/%d/stat' % pid) as stat:
                    fields = stat.read().rsplit(')', 1)[1].split()
            except FileNotFoundError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / CLOCK_TICKS

    def memory_kib(self, field):
        total = 0
        for pid in self.pids:
            try:
                with open('/proc/%d/status' % pid) as status:
                    for line in status:
                        if line.startswith(field + ':'):
                            total += int(line.split()[1])
            except FileNotFoundError:
                continue
        return total

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in getattr(self, 'pids', [])[1:]:  # workers, if any outlived it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.stdout.close()


# ---------------------------------------------------------------------------
# Workloads.  Each returns {metric: value} for one run on one fresh server.

# (metric, unit, higher is better?, format)
METRICS = {
    'msg/s': ('msg/s', True, '%.0f'),
    'cpu/msg': ('server CPU µs/msg', False, '%.0f'),
    'client/msg': ('smtp-source CPU µs/msg', False, '%.0f'),
    'cpu': ('server CPU ms', False, '%.0f'),
    'rss': ('peak RSS growth MiB', False, '%.1f'),
    'rss/size': ('peak RSS growth / message size', False, '%.2f'),
    'session': ('ms per session (median)', False, '%.2f'),
    'cpu/session': ('server CPU µs/session', False, '%.0f'),
    'burst': ('ms per 5,000 NOOPs', False, '%.1f'),
    'cpu/burst': ('server CPU ms per 5,000 NOOPs', False, '%.1f'),
    'rtt': ('NOOP round trip µs (median)', False, '%.0f'),
    'cpu/noop': ('server CPU µs/NOOP', False, '%.0f'),
    'rss/session': ('RSS KiB/session', False, '%.2f'),
}


class Messages:
    """smtp-source: ``messages`` messages of ``length`` bytes."""

    def __init__(self, name, length, sessions, keep_open, messages, workers=False):
        self.name, self.length, self.sessions = name, length, sessions
        self.keep_open, self.messages = keep_open, messages
        self.metrics = ['msg/s', 'cpu/msg', 'client/msg']
        self.for_workers = workers

    def run(self, server, bench):
        before = server.cpu_seconds()
        delivered, elapsed, client_cpu = load.smtp_source(
            bench.smtp_source,
            bench.smtp_env,
            server.port,
            bench.scaled(self.messages),
            self.sessions,
            self.length,
            self.keep_open,
            bench.time_limit,
        )
        used = server.cpu_seconds() - before
        return {
            'msg/s': delivered / elapsed,
            'cpu/msg': used / delivered * 1e6,
            'client/msg': client_cpu / delivered * 1e6,
        }


class BigMessage:
    name = 'one 20 MiB message'
    metrics = ['cpu', 'rss', 'rss/size']
    for_workers = False

    def run(self, server, bench):
        size = 20 * MIB
        rss_before = server.memory_kib('VmRSS')
        before = server.cpu_seconds()
        load.smtp_source(
            bench.smtp_source, bench.smtp_env, server.port, 1, 1, size, keep_open=False, limit=120
        )
        used = server.cpu_seconds() - before
        growth = (server.memory_kib('VmHWM') - rss_before) * KIB
        return {'cpu': used * 1e3, 'rss': growth / MIB, 'rss/size': growth / size}


class FreshSessions:
    name = 'fresh connect + greeting + EHLO + QUIT'
    metrics = ['session', 'cpu/session']
    for_workers = False

    def run(self, server, bench):
        count = bench.scaled(40)
        before = server.cpu_seconds()
        median = load.fresh_sessions(server.port, count)
        used = server.cpu_seconds() - before
        return {'session': median * 1e3, 'cpu/session': used / count * 1e6}


class PipelinedNoops:
    name = '5,000 NOOPs pipelined in one write'
    metrics = ['burst', 'cpu/burst']
    for_workers = False

    def run(self, server, bench):
        repeats = bench.scaled(20)
        before = server.cpu_seconds()
        median = load.pipelined_noops(server.port, 5000, repeats)
        used = server.cpu_seconds() - before
        return {'burst': median * 1e3, 'cpu/burst': used / repeats * 1e3}


class IdleSessions:
    metrics = ['rtt', 'cpu/noop', 'rss/session']
    for_workers = False

    def __init__(self, count):
        self.count = count
        self.name = '%s idle sessions, NOOP round trip' % format(count, ',')

    def run(self, server, bench):
        rss_before = server.memory_kib('VmRSS')
        sessions = load.open_idle_sessions(server.port, self.count)
        try:
            rss = (server.memory_kib('VmRSS') - rss_before) / self.count
            trips = bench.scaled(1000)
            before = server.cpu_seconds()
            median = load.noop_round_trips(server.port, trips)
            used = server.cpu_seconds() - before
        finally:
            for session in sessions:
                session.close()
        return {'rtt': median * 1e6, 'cpu/noop': used / trips * 1e6, 'rss/session': rss}


def workloads():
    return [
        Messages('1 KiB, 1 session kept open', KIB, 1, True, 3000),
        Messages('1 KiB, 10 sessions kept open', KIB, 10, True, 6000, workers=True),
        Messages('1 KiB, 100 sessions kept open', KIB, 100, True, 6000, workers=True),
        Messages('1 KiB, 1 session, new connection per message', KIB, 1, False, 1000),
        Messages(
            '1 KiB, 10 sessions, new connection per message', KIB, 10, False, 2000, workers=True
        ),
        Messages(
            '1 KiB, 100 sessions connecting at once, new connection per message',
            KIB,
            100,
            False,
            2000,
            workers=True,
        ),
        Messages('100 KiB, 10 sessions kept open', 100 * KIB, 10, True, 500),
        BigMessage(),
        FreshSessions(),
        PipelinedNoops(),
        IdleSessions(1000),
        IdleSessions(10000),
    ]


# ---------------------------------------------------------------------------
# Running and reporting


class Bench:
    def __init__(self, options):
        self.scale = 0.2 if options.quick else 1.0
        # smtp-source runs stop after this long; the slow are measured on
        # what they delivered until then.
        self.time_limit = 5 if options.quick else 15
        self.smtp_source, self.smtp_env = load.find_smtp_source(options.cache, options.smtp_source)

    def scaled(self, count):
        return max(1, int(count * self.scale))


def run_all(bench, targets, chosen, rounds):
    results = collections.defaultdict(list)  # (workload, target) -> [{metric: value}]
    failures = {}
    for round_number in range(rounds):
        for workload in chosen:
            # Rotate the order each round so that no target always goes first.
            turn = targets[round_number % len(targets) :] + targets[: round_number % len(targets)]
            for target in turn:
                if target.workers > 1 and not workload.for_workers:
                    continue
                key = (workload.name, target.name)
                if key in failures:
                    continue
                print(
                    'round %d/%d  %-60s %s'
                    % (round_number + 1, rounds, workload.name, target.name),
                    file=sys.stderr,
                    flush=True,
                )
                server = Server(target)
                try:
                    results[key].append(workload.run(server, bench))
                except load.LoadFailed as failure:
                    status = 'died' if not server.alive() else 'stalled'
                    failures[key] = '%s: %s' % (status, failure)
                finally:
                    server.stop()
    return results, failures


def median_of(runs, metric):
    return statistics.median(run[metric] for run in runs)


def cell(value, reference, metric):
    form = METRICS[metric][2]
    text = form % value
    if reference:
        text += ' (%.2fx)' % (value / reference)
    return text


def report(targets, chosen, results, failures, rounds):
    names = [target.name for target in targets]
    header = ['workload', 'metric'] + names
    rows = []
    for workload in chosen:
        for index, metric in enumerate(workload.metrics):
            reference_runs = results.get((workload.name, REFERENCE))
            reference = median_of(reference_runs, metric) if reference_runs else None
            row = [workload.name if index == 0 else '', METRICS[metric][0]]
            for name in names:
                key = (workload.name, name)
                if key in failures:
                    row.append('fails' if index == 0 else '')
                elif key in results:
                    row.append(cell(median_of(results[key], metric), reference, metric))
                else:
                    row.append('-')
            rows.append(row)
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    line = '  '.join('-' * width for width in widths)
    print(line)
    print('  '.join(text.ljust(width) for text, width in zip(header, widths)))
    print(line)
    for row in rows:
        print('  '.join(text.ljust(width) for text, width in zip(row, widths)))
    print(line)
    print(
        'Medians of %d round(s); (n.nnx) is the ratio to %s in this run. '
        'msg/s: higher is better; everything else: lower is better.' % (rounds, REFERENCE)
    )
    report_scaling(chosen, results)
    if failures:
        print('\nFailures:')
        for (workload, target), why in sorted(failures.items()):
            print('  %s, %s: %s' % (target, workload, why))


def report_scaling(chosen, results):
    """--workers 2 against one worker, next to what the machine allows.

    Server and load generator share the machine's cores: with one worker
    costing S µs of server CPU and smtp-source C µs of its own per message,
    all cores together manage at most cores * 1e6 / (S + C) msg/s, whatever
    the number of workers.  Printed as a ratio to one worker's msg/s, it is
    the most --workers can show on this machine.
    """
    cores = os.cpu_count() or 1
    lines = []
    for workload in chosen:
        one = results.get((workload.name, 'compat-3.13'))
        two = results.get((workload.name, 'compat-3.13-w2'))
        if not (one and two):
            continue
        rate = median_of(one, 'msg/s')
        per_message = median_of(one, 'cpu/msg') + median_of(one, 'client/msg')
        ceiling = cores * 1e6 / per_message / rate
        lines.append((workload.name, median_of(two, 'msg/s') / rate, ceiling))
    if lines:
        print(
            '\n--workers 2 against one worker (smtpd_compat, Python 3.13), msg/s; '
            'ceiling: what %d cores allow at one worker\'s CPU per message '
            '(server + smtp-source):' % cores
        )
        for name, ratio, ceiling in lines:
            print('  %-70s %.2fx  (ceiling %.2fx)' % (name, ratio, ceiling))


def main():
    parser = argparse.ArgumentParser(description='Benchmark smtpd_compat (see bench/run.py).')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='one round of smaller loads: a smoke test, not numbers to quote',
    )
    parser.add_argument('--rounds', type=int, help='rounds per measurement (default 3)')
    parser.add_argument('--only', help='a regular expression: run the workloads it finds in')
    parser.add_argument('--targets', help='comma-separated target names')
    parser.add_argument('--py313', help='Python 3.13 interpreter (default: newest in pyenv)')
    parser.add_argument('--py311', help='Python 3.11 interpreter (default: newest in pyenv)')
    parser.add_argument('--smtp-source', help='smtp-source binary to use')
    parser.add_argument(
        '--cache',
        default=os.path.join(
            os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'smtpd-compat-bench'
        ),
        help='where smtp-source and the aiosmtpd venv are kept (default: %(default)s)',
    )
    options = parser.parse_args()
    rounds = options.rounds or (1 if options.quick else 3)
    load.raise_fd_limit()
    os.makedirs(options.cache, exist_ok=True)
    bench = Bench(options)
    targets, missing = make_targets(options)
    chosen = workloads()
    if options.only:
        chosen = [w for w in chosen if re.search(options.only, w.name)]
    if options.quick:
        chosen = [w for w in chosen if not (isinstance(w, IdleSessions) and w.count > 1000)]
    started = time.monotonic()
    results, failures = run_all(bench, targets, chosen, rounds)
    report(targets, chosen, results, failures, rounds)
    for note in missing:
        print('not measured: ' + note)
    print('took %.0f s' % (time.monotonic() - started))


if __name__ == '__main__':
    main()
