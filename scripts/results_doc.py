#!/usr/bin/env python3
"""Assembles docs/results.md from docs/results.template.md and the tables scripts/results.sh wrote
to runs/results/: {{include:FILE}} pastes runs/results/FILE unedited, {{budget:RUN...}} writes
each run's meta-steps and training time from its log.jsonl, {{name}} pastes docs/results.NAME.md
(hand-written discussion of numbers that change from run to run)."""
import json, pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
runs = root / "runs" / "results"
docs = root / "docs"


def budget(names):
    rows = []
    for n in names.split():
        lines = [l for l in (runs / n / "log.jsonl").read_text().splitlines() if l.strip()]
        last = json.loads(lines[-1])
        rows.append(f"| {n} | {last['step']} | {last['seconds'] / 60:.1f} min |")
    head = "" if len(names.split()) > 1 else "| run | meta-steps | training time |\n|---|---|---|\n"
    return head + "\n".join(rows)


def fill(m):
    kind, _, arg = m.group(1).partition(":")
    if kind == "include":
        return (runs / arg).read_text().strip()
    if kind == "budget":
        return budget(arg)
    return (docs / f"results.{kind}.md").read_text().strip()


text = (docs / "results.template.md").read_text()
out = re.sub(r"\{\{([^}]+)\}\}", fill, text)
(docs / "results.md").write_text(out)
print("wrote docs/results.md", file=sys.stderr)
