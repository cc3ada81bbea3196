"""The lock files: check an environment against them, or show what a new lock changes.

Usage:
  python .ci/lockfile.py check LOCK [--no-deps LOCK]   (.ci/setup, after installing)
  python .ci/lockfile.py diff OLD NEW                  (.ci/refresh-lock, before replacing)

`check` fails loudly unless the running environment is exactly the locks: every `name==version`
pinned must be installed at that version, nothing else may be installed except this project
(editable) and the venv's own pip, and the installed packages' declared requirements must hold
among themselves (`pip check`), except those of packages a lock installs with --no-deps.
Standard library only: it runs before anything is trusted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PROJECT = "pytest-guardrails"
ALWAYS = {"pip", PROJECT}  # pip comes from .ci/bootstrap.lock, the project from `-e .`
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = PIN.match(line)
        if m:
            name = canonical(m.group(1))
            if name in pins:
                sys.exit(f"lockfile: {path}:{number}: {name} is pinned twice")
            pins[name] = m.group(2)
    if not pins:
        sys.exit(f"lockfile: {path}: no `name==version` pins found")
    return pins


def installed() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def drift(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    problems = [
        f"  {name}: locked {want}, installed {have.get(name, 'nothing')}"
        for name, want in sorted(pins.items())
        if have.get(name) != want
    ]
    problems += [
        f"  {name}=={version}: installed but not in the lock"
        for name, version in sorted(have.items())
        if name not in pins and name not in ALWAYS
    ]
    return problems


def broken_requirements(no_deps: set[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    ).stdout
    return [
        f"  {line}"
        for line in out.splitlines()
        if line.strip() and "No broken requirements" not in line
        if canonical(line.split()[0]) not in no_deps
    ]


def check(lock: Path, no_deps_lock: Path | None) -> int:
    pins = read_pins(lock)
    no_deps = read_pins(no_deps_lock) if no_deps_lock else {}
    problems = drift({**pins, **no_deps}, installed())
    if problems:
        print("lockfile: the environment differs from the lock:", *problems, sep="\n")
        print("fix: rm -rf the venv and run `bash .ci/setup` again (it installs the lock only)")
        return 1
    broken = broken_requirements(set(no_deps))
    if broken:
        print("lockfile: the locked packages do not satisfy each other:", *broken, sep="\n")
        print("fix: regenerate the lock with `bash .ci/refresh-lock`")
        return 1
    print(f"lockfile: the environment is the lock ({len(pins) + len(no_deps)} packages)")
    return 0


def diff(old_lock: Path, new_lock: Path) -> int:
    old, new = read_pins(old_lock), read_pins(new_lock)
    lines = [
        f"  {n}: {old[n]} -> {new[n]}" for n in sorted(old.keys() & new.keys()) if old[n] != new[n]
    ]
    lines += [f"  {n}: added {new[n]}" for n in sorted(new.keys() - old.keys())]
    lines += [f"  {n}: removed {old[n]}" for n in sorted(old.keys() - new.keys())]
    print(
        f"lockfile: {len(lines)} change(s), {len(new)} packages in the new lock", *lines, sep="\n"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    checking = sub.add_parser("check", help="fail unless this environment is the lock")
    checking.add_argument("lock", type=Path)
    checking.add_argument("--no-deps", type=Path, help="a lock installed with pip --no-deps")
    diffing = sub.add_parser("diff", help="print what NEW changes against OLD")
    diffing.add_argument("old", type=Path)
    diffing.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.lock, args.no_deps)
    return diff(args.old, args.new)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
