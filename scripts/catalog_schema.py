"""Write docs/catalog.schema.json, the JSON schema of registry.yaml and plugins' catalog fragments,
generated from the pydantic model that validates them (zoo_core.catalog.CatalogFile).

    .venv/bin/python scripts/catalog_schema.py          # tests/test_kit.py checks the file is current
"""

import json
from pathlib import Path

from zoo_core.catalog import CatalogFile

TARGET = Path(__file__).resolve().parents[1] / "docs" / "catalog.schema.json"


def schema_text() -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **CatalogFile.model_json_schema()}
    schema["title"] = "zoo catalog (registry.yaml and plugins' catalog fragments)"
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(schema_text())
    print(f"wrote {TARGET}")
