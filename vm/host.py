"""Host-side helpers of the VM tier (scripts/test-vm): the apt mirror, the accelerator, the
recipe hash, and the report of a finished run.  Standard library only (Python 3.11+).

    python3 vm/host.py mirror RELEASE        print the host's apt mirror URI for RELEASE
    python3 vm/host.py accel                 print "kvm" or "tcg"
    python3 vm/host.py deps REPO             print the project's runtime dependencies
    python3 vm/host.py recipe-hash REPO      print the cache key of the image
    python3 vm/host.py report OUT_DIR        print the summary and session JSON; exit 1 on failure
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import tomllib

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


# --- the mirror ------------------------------------------------------------------------------
def _one_line_sources(text: str) -> Iterator[tuple[list[str], list[str], list[str], list[str]]]:
    """Entries of a one-line-style sources.list: (types, uris, suites, components)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options such as [signed-by=...]
        fields = line.split()
        if len(fields) >= 3:
            yield [fields[0]], [fields[1]], [fields[2]], fields[3:]


def _deb822_sources(text: str) -> Iterator[tuple[list[str], list[str], list[str], list[str]]]:
    """Entries of a deb822 .sources file (stanzas separated by blank lines)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.lstrip().startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        yield (
            fields.get("types", "").split(),
            fields.get("uris", "").split(),
            fields.get("suites", "").split(),
            fields.get("components", "").split(),
        )


def apt_entries(root: Path = Path("/etc/apt")) -> Iterator[tuple[list[str], list[str], list[str], list[str]]]:
    """Every enabled entry of the host's apt sources, in apt's reading order."""
    main = root / "sources.list"
    if main.is_file():
        yield from _one_line_sources(main.read_text(errors="replace"))
    parts = root / "sources.list.d"
    for path in sorted(parts.glob("*")) if parts.is_dir() else []:
        if path.suffix == ".list":
            yield from _one_line_sources(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            yield from _deb822_sources(path.read_text(errors="replace"))


def mirror_for(release: str, root: Path = Path("/etc/apt")) -> str | None:
    """The URI of the first `deb` source that carries RELEASE's own suite with `main`."""
    for types, uris, suites, components in apt_entries(root):
        if "deb" in types and release in suites and "main" in components and uris:
            return uris[0].rstrip("/")
    return None


# --- the accelerator -------------------------------------------------------------------------
def kvm_usable() -> bool:
    """KVM only when the CPU advertises vmx/svm AND /dev/kvm answers the KVM API version.

    Some machines offer a /dev/kvm that is not hardware virtualisation (it hangs a stock
    guest kernel); those CPUs do not list vmx or svm, so the flag check comes first.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION) == KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


# --- the recipe hash -------------------------------------------------------------------------
def project_dependencies(repo: Path) -> list[str]:
    """The runtime dependencies from pyproject.toml (they are baked into the image)."""
    data = tomllib.loads((repo / "pyproject.toml").read_text())
    return sorted(data["project"]["dependencies"])


def recipe_hash(repo: Path) -> str:
    """Hash of everything the cached image is built from: vm/image/ and the dependency list."""
    digest = hashlib.sha256()
    image_dir = repo / "vm" / "image"
    for path in sorted(p for p in image_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(image_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update("\n".join(project_dependencies(repo)).encode())
    return digest.hexdigest()[:16]


# --- the report ------------------------------------------------------------------------------
def junit_counts(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Counts of a pytest junit XML file and the (test, message) of each failure or error."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    problems: list[tuple[str, str]] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            tag = "failure" if "failure" in kinds else "error"
            counts["failed" if tag == "failure" else "errors"] += 1
            child = case.find(tag)
            message = (child.get("message") or "") if child is not None else ""
            problems.append((name, (message.splitlines() or [""])[0][:300]))
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, problems


def collect_figures(out: Path) -> dict[str, str]:
    """Figures of a run: `name value` lines (host, guest script) and the tests' figures.jsonl."""
    figures: dict[str, str] = {}
    text = out / "figures.txt"
    for line in text.read_text().splitlines() if text.is_file() else []:
        if " " in line:
            name, value = line.split(" ", 1)
            figures[name] = value
    tests = out / "figures.jsonl"
    for line in tests.read_text().splitlines() if tests.is_file() else []:
        item = json.loads(line)
        name = item["name"]
        while name in figures:
            name += "'"
        figures[name] = f"{item['value']}{item.get('unit', '')}"
    return figures


def report(out: Path) -> int:
    """Print every session JSON the tests saw, the figures and a one-line summary."""
    sessions = out / "sessions.jsonl"
    if sessions.is_file():
        print("vm: session JSON the tests saw:")
        for line in sessions.read_text().splitlines():
            print("  " + line)
    figures = collect_figures(out)
    if figures:
        print("vm: figures: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    junit = out / "junit.xml"
    if not junit.is_file():
        rc = (out / "guest-rc").read_text().strip() if (out / "guest-rc").is_file() else "missing"
        print(f"vm: FAILED: the guest wrote no test results (guest exit status {rc}); see {out}")
        return 1
    counts, problems = junit_counts(junit)
    for name, message in problems:
        print(f"vm: FAILED {name}: {message}")
    ok = counts["failed"] == 0 and counts["errors"] == 0 and counts["passed"] > 0
    print(
        f"vm: {'OK' if ok else 'FAILED'}: {counts['passed']} passed, {counts['failed']} failed,"
        f" {counts['errors']} errors, {counts['skipped']} skipped (results in {out})"
    )
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "mirror":
        uri = mirror_for(argv[1])
        if uri is None:
            print(f"no apt source of the host names Debian {argv[1]} main", file=sys.stderr)
            return 1
        print(uri)
        return 0
    if argv == ["accel"]:
        print("kvm" if kvm_usable() else "tcg")
        return 0
    if len(argv) == 2 and argv[0] == "deps":
        print("\n".join(project_dependencies(Path(argv[1]))))
        return 0
    if len(argv) == 2 and argv[0] == "recipe-hash":
        print(recipe_hash(Path(argv[1])))
        return 0
    if len(argv) == 2 and argv[0] == "report":
        return report(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
