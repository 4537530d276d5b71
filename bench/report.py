"""Statistics, progress lines, target verdicts and bench/RESULTS.md.

Every figure is kept with the runs it came from, so the report can show a median and
the spread (min–max over runs) next to it, and nothing is printed that was not measured.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

# Worker processes inherit the bench's start time, so all progress lines share one clock.
_T0 = float(os.environ.setdefault("BCX_BENCH_T0", str(time.time())))


def say(text: str) -> None:
    """A progress line on stderr, stamped with the seconds since the bench started."""
    print(f"[{time.time() - _T0:6.1f}s] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; values need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@dataclass(frozen=True, slots=True)
class Stat:
    """One measurement over several runs."""

    runs: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float] | tuple[float, ...]) -> Stat:
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def lo(self) -> float:
        return min(self.runs) if self.runs else float("nan")

    @property
    def hi(self) -> float:
        return max(self.runs) if self.runs else float("nan")


def fmt(value: float, unit: str = "") -> str:
    """Numbers a reader can scan: thousands separators, sensible precision."""
    if value != value:  # NaN
        return "n/a"
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "x":
        return f"{value:.2f}"
    if unit in ("ms", "µs"):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if unit == "MB":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class Row:
    section: str
    name: str
    stat: Stat
    unit: str
    note: str = ""

    def spread(self) -> str:
        if len(self.stat.runs) < 2:
            return "(1 run)"
        return f"{fmt(self.stat.lo, self.unit)} – {fmt(self.stat.hi, self.unit)}"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float
    goal: str
    ok: bool
    unit: str
    label: str = ""

    def line(self) -> str:
        value = f"{fmt(self.value, self.unit)} {self.unit}".rstrip() if self.unit != "%" \
            else fmt(self.value, "%")
        extra = f" [{self.label}]" if self.label else ""
        return (f"target {self.name}: {value} (goal {self.goal}) "
                f"{'PASS' if self.ok else 'MISS'}{extra}")


@dataclass(slots=True)
class Results:
    quick: bool
    command: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    seconds: float = 0.0

    def add(self, section: str, name: str, values: list[float] | Stat, unit: str,
            note: str = "") -> Stat:
        stat = values if isinstance(values, Stat) else Stat.of(values)
        self.rows.append(Row(section, name, stat, unit, note))
        say(f"  {section} / {name}: {fmt(stat.median, unit)} {unit} "
            f"(spread {Row(section, name, stat, unit).spread()}) {note}".rstrip())
        return stat

    def target(self, name: str, value: float, goal: str, ok: bool, unit: str,
               label: str = "") -> None:
        self.targets.append(Target(name, value, goal, ok, unit, label))


# --- the machine ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    versions = {}
    for dist in ("grpcio", "cryptography", "SQLAlchemy", "protobuf"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    import sqlite3
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **versions,
    }


def render_markdown(results: Results) -> str:
    m = machine()
    mode = "quick (`--quick`)" if results.quick else "full"
    out = [
        "# bcx benchmark results",
        "",
        "Generated by `python -m bench` from one run; every figure below was measured in",
        "that run. Absolute figures drift on shared machines, so bcx is judged by its ratio",
        "to baselines measured in the same run (see README, \"Benchmarks\").",
        "",
        f"- command: `{results.command}`",
        f"- mode: {mode}; started {results.started}; took {results.seconds:.0f} s",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}",
        f"- versions: Python {m['python']}, grpcio {m['grpcio']}, cryptography "
        f"{m['cryptography']}, SQLAlchemy {m['SQLAlchemy']}, protobuf {m['protobuf']}, "
        f"SQLite {m['sqlite']}",
        "",
        "## Targets",
        "",
        "```",
        *[t.line() for t in results.targets],
        "```",
        "",
    ]
    sections: dict[str, list[Row]] = {}
    for row in results.rows:
        sections.setdefault(row.section, []).append(row)
    for section, rows in sections.items():
        out += ["", f"## {section}", "",
                "| measurement | median | spread (min – max) | unit | runs | notes |",
                "|---|---:|---:|---|---:|---|"]
        out += [f"| {row.name} | {fmt(row.stat.median, row.unit)} | {row.spread()} | "
                f"{row.unit} | {len(row.stat.runs)} | {row.note} |" for row in rows]
    if results.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in results.notes]
    return "\n".join(out) + "\n"
