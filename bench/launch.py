"""Run one command and write its wall time, CPU time and peak RSS as JSON.

    python -I -S bench/launch.py RESULT.json TIMEOUT_S -- CMD ARGS...

Why a separate, tiny launcher: Linux counts in a child's ``ru_maxrss`` the
resident memory its parent had when it forked (the copied address space; with
vfork, the parent's own peak). Spawned straight from ``run.py`` (70+ MB after
parsing certpager's JSON) every child would report at least that. Forked from
this process (a few MB, stdlib only), a child reports its own peak. The child
is killed after TIMEOUT_S, and when this launcher gets SIGTERM or SIGINT.
"""

import contextlib
import json
import os
import signal
import sys
import time


def main() -> int:
    out_path, timeout = sys.argv[1], float(sys.argv[2])
    if sys.argv[3] != "--":
        raise SystemExit("usage: launch.py RESULT.json TIMEOUT_S -- CMD ARGS...")
    cmd = sys.argv[4:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)

    def stop(_sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _pid, status, usage = os.wait4(pid, 0)  # signals interrupt it only to run stop() (PEP 475)
    wall = time.perf_counter() - start
    signal.setitimer(signal.ITIMER_REAL, 0)
    result = {
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
        "exit_code": os.waitstatus_to_exitcode(status),
    }
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
