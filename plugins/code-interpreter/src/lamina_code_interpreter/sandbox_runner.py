"""The first Python code run inside each sandbox: it runs the caller's code and reports how it ended.

Its source is passed to the sandbox's interpreter with ``-c`` (no file is shared with the sandbox);
the code arrives on stdin, so its size is not bounded by the kernel's argument limit. argv[1] is the
file descriptor of the report pipe, argv[2:] the directories the code may import from (added with
``site.addsitedir`` so their ``.pth`` files apply, the interpreter having started with ``-I -S``).

The report is one JSON object on the report pipe: ``{"exception": {"type", "message", "traceback"}}``
when the code raised (or ``{"exception": null}``), plus ``exit_code`` for ``SystemExit``. The code
can write to that pipe too: it only ever misreports its own result, which the provider caps in size.
Processes the code forks do not report: only the process that started the code does.
"""

import json
import linecache
import os
import site
import sys
import traceback

FILENAME = "<code>"


def main() -> None:
    report_fd = int(sys.argv[1])
    for path in sys.argv[2:]:
        site.addsitedir(path)
    source = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    sys.argv = [FILENAME]
    lines = source.splitlines(keepends=True)
    linecache.cache[FILENAME] = (len(source), None, lines, FILENAME)  # tracebacks show the code's lines
    main_pid = os.getpid()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__file__": FILENAME}
    exception = None
    exit_code = 0
    try:
        exec(compile(source, FILENAME, "exec"), namespace)
    except SystemExit as exc:
        exit_code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException as exc:
        if os.getpid() != main_pid:
            raise  # a forked child ends as it would under plain `python`
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # drop this frame
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        sys.stderr.write(text)
        exception = {"type": type(exc).__name__, "message": str(exc), "traceback": text}
        exit_code = 1
    if os.getpid() != main_pid:
        os._exit(exit_code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    report = json.dumps({"exception": exception, "exit_code": exit_code})
    try:
        os.write(report_fd, report.encode())
    except OSError:
        pass
    sys.exit(exit_code)


main()
