"""Print the README's catalog table from registry.yaml (tests/test_readme.py keeps them in sync).

    python scripts/catalog_table.py
"""

from pathlib import Path

import yaml

REGISTRY = Path(__file__).resolve().parents[1] / "registry.yaml"


def catalog_table() -> str:
    models = yaml.safe_load(REGISTRY.read_text())["models"]
    lines = [
        "| name | family | metrics (measured) | measured by | weights | dataset |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in sorted(models.items()):
        metrics = "<br>".join(
            f"{m['name']} = {m['value']:.4g}" + (f" ± {m['stderr']:.2g}" if m.get("stderr") else "")
            + (" (authors')" if m.get("reported_by") else "") for m in entry.get("metrics", []))
        commands = "<br>".join(f"`{m['command']}`" if m.get("command") else f"reported by {m['reported_by']}"
                               for m in {m.get("command") or m["reported_by"]: m for m in entry.get("metrics", [])}.values())
        weights = entry["weights"]
        source = f"`{weights['package']}` package" if "package" in weights else f"Hub `{weights['repo']}`" + (
            f" ({weights['format']}, unpinned: {weights['revision']})" if weights.get("unpinned") else "")
        lines.append(
            f"| `{name}` | {entry['family']} | {metrics} | {commands} | {source} | {entry.get('dataset') or ''} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(catalog_table())
