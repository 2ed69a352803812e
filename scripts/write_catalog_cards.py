"""Rewrite the model card (README.md) and sample image (samples.png) of every catalog model whose
weights ship inside a package of this checkout, from its catalog entry; then update the sha256 of
those two files wherever the catalog lists them (registry.yaml, the plugins' catalog-entries.yaml
and catalog.yaml). config.json and model.safetensors are never written.

    .venv/bin/python scripts/write_catalog_cards.py             # every such entry
    .venv/bin/python scripts/write_catalog_cards.py ae-mnist    # some

Run it after changing a catalog entry's metrics, dataset or license, or the card's layout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HASHED = ("README.md", "samples.png")


def catalog_files() -> list[Path]:
    return [REPO / "registry.yaml", *sorted(REPO.glob("plugins/*/catalog-entries.yaml")),
            *sorted(REPO.glob("plugins/*/zoo_*/catalog.yaml")), *sorted(REPO.glob("tests/example-plugin/*/*/catalog.yaml"))]


def update_hashes(old: dict[str, str], new: dict[str, str]) -> None:
    """Replace each old sha256 by the new one; list samples.png next to README.md where it is new."""
    for path in catalog_files():
        text = original = path.read_text()
        for name in HASHED:
            if name in old and old[name] != new[name]:
                text = text.replace(old[name], new[name])
        if "samples.png" not in old and "README.md" in old:
            text = re.sub(rf"^(\s*)README.md: {new['README.md']}$",
                          lambda m: f"{m.group(0)}\n{m.group(1)}samples.png: {new['samples.png']}", text, flags=re.M)
        if text != original:
            path.write_text(text)
            print(f"  updated {path.relative_to(REPO)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="catalog names (default: every entry shipped in this checkout)")
    args = parser.parse_args(argv)

    import torch

    import zoo
    from zoo_core.catalog import PackageWeights, catalog
    from zoo_core.loading import sha256_file

    torch.set_num_threads(2)
    names = args.names or zoo.list_models()
    for name in names:
        entry = catalog().get(name)
        if not isinstance(entry.weights, PackageWeights):
            print(f"{name}: weights on the Hub, skipped")
            continue
        folder = Path(str(resources.files(entry.weights.package).joinpath(entry.weights.path)))
        if REPO not in folder.resolve().parents:
            print(f"{name}: {folder} is not in this checkout, skipped")
            continue
        old = {n: sha256_file(folder / n) for n in HASHED if (folder / n).is_file()}
        if set(entry.weights.sha256) & set(HASHED) != set(old):
            print(f"{name}: the catalog lists {sorted(entry.weights.sha256)}, the folder holds {sorted(old)}", file=sys.stderr)
        model = zoo.load(name, device="cpu")  # checks every listed sha256 first
        saved_config = json.loads((folder / "config.json").read_text())
        model.write_card(
            folder, config=saved_config, name=name,
            metrics=[m.model_dump(exclude_none=True) for m in entry.metrics], dataset=entry.dataset,
            license=entry.license, license_name=entry.license_name, license_link=entry.license_link,
        )
        new = {n: sha256_file(folder / n) for n in HASHED}
        print(f"{name}: wrote {folder.relative_to(REPO)}/README.md and samples.png")
        update_hashes({n: h for n, h in entry.weights.sha256.items() if n in HASHED}, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
