"""Start many short `tap-close` runs fast: this process imports the tap once (the slow part of
a start), then forks one child per run. Each child is a new process that has run nothing yet:
its own working directory, environment, stdout and stderr files, then `TapClose.cli()`, the
`tap-close` entry point, exiting as that command does (atexit handlers included).

Protocol: one JSON job per stdin line ({"cwd", "env", "args", "stdout", "stderr"}); one JSON
line back per job, {"returncode": N}, when its child has exited.
"""

from __future__ import annotations

import json
import os
import sys

import tap_close.stores.postgres
import tap_close.stores.s3  # noqa: F401 - the optional stores' imports too
from tap_close.tap import TapClose  # imported once, before any fork


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the run: leave this loop only by exiting
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(target, fd)
                os.close(target)
            sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's, closed at exit
            sys.argv = ["tap-close", *job["args"]]
            TapClose.cli()
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
