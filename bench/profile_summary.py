"""Summarise a py-spy raw (collapsed stacks) profile: the functions with the most self time and the most inclusive
time, as % of the samples of the busiest thread (the event loop). For docs/performance.md.

Usage: python bench/profile_summary.py PROFILE.txt [--top 25] [--all-threads]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter


def _frame(f: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    m = re.match(r"(.*) \((.*?):\d+\)$", f)
    if not m:
        return f
    name, path = m.groups()
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--all-threads", action="store_true")
    a = ap.parse_args()
    stacks: list[tuple[list[str], int]] = []
    threads: Counter[str] = Counter()
    for line in open(a.profile):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        threads[frames[0]] += int(n)
        stacks.append((frames, int(n)))
    main_thread = threads.most_common(1)[0][0]
    if not a.all_threads:
        stacks = [(f, n) for f, n in stacks if f[0] == main_thread]
    total = sum(n for _, n in stacks)
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, n in stacks:
        names = [_frame(f) for f in frames[1:]]
        if names:
            own[names[-1]] += n
        for name in set(names):
            incl[name] += n
    idle = sum(n for f, n in stacks if any("select" in x or "epoll" in x for x in f[-2:]))
    print(f"samples {total} (thread {main_thread}); idle in select/epoll: {100 * idle / total:.1f} %")
    print("\nself time:")
    for name, n in own.most_common(a.top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("\ninclusive time:")
    for name, n in incl.most_common(a.top * 2):
        print(f"  {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
