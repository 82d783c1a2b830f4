"""Shared by the deploy kit's generators (grafana/generate-dashboard.py,
kubernetes/generate-prometheusrule.py): write the generated file, or with `--check` exit 1
when the committed one differs from what would be generated. Standard library only."""

import sys
from pathlib import Path


def write_or_check(out, text, argv, usage, also_check=None):
    """`argv` empty: writes `text` to `out`. `--check`: 1 when `out` is stale, else the
    result of `also_check()` (0 when there is none). Anything else: `usage`, exit 2."""
    if argv[1:] == ["--check"]:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is stale: run python3 {Path(argv[0]).as_posix()}", file=sys.stderr)
            return 1
        return also_check() if also_check else 0
    if argv[1:]:
        print(usage, file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
