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
        metrics = "<br>".join(f"{m['name']} = {m['value']:.4g}" for m in entry.get("metrics", []))
        commands = "<br>".join(f"`{c}`" for c in dict.fromkeys(m["command"] for m in entry.get("metrics", [])))
        weights = entry["weights"]
        source = f"`{weights['package']}` package" if "package" in weights else f"Hub `{weights['repo']}`"
        lines.append(
            f"| `{name}` | {entry['family']} | {metrics} | {commands} | {source} | {entry.get('dataset') or ''} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(catalog_table())
