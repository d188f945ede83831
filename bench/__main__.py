"""`python -m bench [SUITE ...] [--quick]`: run the suites and write bench/results.md.

A suite is a module `bench/<name>.py` with `main(quick: bool) -> str` returning its Markdown section. Each
suite runs in a process of its own (each sets up Django on its own scratch database).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITES = ["engine", "pages", "faults", "events"]
RESULTS = Path(__file__).resolve().parent / "results.md"


def machine() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{platform.node()} — {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    chosen = [a for a in argv if not a.startswith("--")] or SUITES
    sections = []
    for name in chosen:
        started = time.monotonic()
        with tempfile.NamedTemporaryFile("r", suffix=".md") as handle:
            code = f"import sys, bench.{name} as m; open(sys.argv[1], 'w').write(m.main(quick={quick}))"
            done = subprocess.run([sys.executable, "-c", code, handle.name], cwd=RESULTS.parent.parent)
            section = Path(handle.name).read_text(encoding="utf-8")
        if done.returncode != 0 or not section or "The suite failed" in section:
            section = section or f"## {name}\n\nThe suite failed (exit {done.returncode}); see its output above."
        sections.append(section)
        print(f"bench {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    header = f"# Benchmark results\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}."
    if quick:
        header += " Quick mode (smaller counts, one repeat): a smoke test, not the figures."
    out = RESULTS if not quick else RESULTS.with_name("results-quick.md")
    out.write_text(header + "\n\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all("The suite failed" not in s for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
