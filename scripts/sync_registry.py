"""Copy catalog entries from the plugins' catalog-entries.yaml (what `zoo ship` writes) into
registry.yaml (what zoo-core ships), replacing each entry's block and keeping the rest of the file
as it is; tests/test_loading.py checks that the two agree.

    .venv/bin/python scripts/sync_registry.py gan-mnist vae-mnist

Then `scripts/mnist_table.py NAME --force --catalog` (for MNIST models) and
`scripts/write_catalog_cards.py NAME` bring the metric rows and the card up to date in both files.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def entry_block(text: str, name: str) -> tuple[int, int]:
    """The line range [start, end) of the entry ``name`` under ``models:`` (``ValueError`` if absent)."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"  {name}:\n")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^  \S|^\S", lines[i])), len(lines))
    return start, end


def sync(name: str, registry: Path = REPO / "registry.yaml") -> Path:
    fragments = [p for p in sorted(REPO.glob("plugins/*/catalog-entries.yaml"))
                 if name in (yaml.safe_load(p.read_text("utf-8")).get("models") or {})]
    if len(fragments) != 1:
        raise SystemExit(f"{name}: found in {len(fragments)} plugins' catalog-entries.yaml, expected one")
    source = fragments[0].read_text("utf-8").splitlines(keepends=True)
    start, end = entry_block("".join(source), name)
    block = source[start:end]
    while block and not block[-1].strip():
        block.pop()
    lines = registry.read_text("utf-8").splitlines(keepends=True)
    try:
        old_start, old_end = entry_block("".join(lines), name)
        while old_end > old_start and not lines[old_end - 1].strip():
            old_end -= 1
    except ValueError:  # a new entry goes last
        old_start = old_end = len(lines)
    lines[old_start:old_end] = block
    text = "".join(lines)
    if yaml.safe_load(text)["models"][name] != yaml.safe_load(fragments[0].read_text("utf-8"))["models"][name]:
        raise SystemExit(f"{name}: the copied block does not parse as the plugin's entry; registry.yaml is unchanged")
    registry.write_text(text, "utf-8")
    return fragments[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="catalog names")
    for name in parser.parse_args().names:
        print(f"{name}: registry.yaml <- {sync(name).relative_to(REPO)}")


if __name__ == "__main__":
    main()
