"""Per test file: how many tests ran and their summed seconds, from pytest's JUnit XML files (one
column per file given; e.g. before and after a change), as a markdown table, slowest first.

    PYTEST_ADDOPTS=--junitxml=/tmp/after.xml make test
    python scripts/test_times.py /tmp/before.xml /tmp/after.xml

Summed seconds are worker-seconds: with N xdist workers the wall time is about their sum / N.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def per_file(path: Path) -> tuple[Counter[str], Counter[str]]:
    """(seconds, count) per test file of one JUnit XML file."""
    seconds: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for case in ET.parse(path).iter("testcase"):
        name = case.get("classname", "").split(".")[-1]
        seconds[name] += float(case.get("time", 0.0))
        count[name] += 1
    return seconds, count


def table(paths: list[Path]) -> str:
    columns = [per_file(p) for p in paths]
    files = sorted({f for s, _ in columns for f in s}, key=lambda f: -columns[-1][0][f])
    head = " | ".join(f"{p.stem}: tests | s" for p in paths)
    lines = [f"| file | {head} |", "|---|" + "---|---|" * len(paths)]
    for f in files:
        cells = " | ".join(f"{c[f]} | {s[f]:.0f}" if c[f] else "- | -" for s, c in columns)
        lines.append(f"| {f} | {cells} |")
    totals = " | ".join(f"{sum(c.values())} | {sum(s.values()):.0f}" for s, c in columns)
    lines.append(f"| all | {totals} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", nargs="+", type=Path)
    print(table(parser.parse_args().junit))


if __name__ == "__main__":
    main()
