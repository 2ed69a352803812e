"""Model cards: the README.md that save_pretrained writes next to the weights."""

from __future__ import annotations

import json
from typing import Any, Optional

import yaml


#: What the usage snippet loads when the card is written without a repo id (a local folder).
LOCAL_TARGET = "path/to/this/folder"


def model_card(
    config: dict[str, Any],
    *,
    metrics: list[dict[str, Any]],
    dataset: Optional[str] = None,
    license: Optional[str] = None,
    repo_id: Optional[str] = None,
    samples_are_images: bool = True,
    training: Optional[dict[str, Any]] = None,
) -> str:
    """A Hub model card: YAML metadata (library, tags, datasets, license, model-index) and usage;
    ``training`` (written by ``zoo train``) adds how the weights were trained."""
    family = config["family"]
    name = repo_id or f"a {family} model"
    metadata: dict[str, Any] = {
        "library_name": "zoo",
        "tags": ["zoo", f"zoo-{family}", family, "generative"],
        "pipeline_tag": "unconditional-image-generation" if samples_are_images else "image-to-3d",
    }
    if license:
        metadata["license"] = license
    if dataset:
        metadata["datasets"] = [dataset]
    if metrics:
        metadata["model-index"] = [
            {
                "name": repo_id or family,
                "results": [
                    {
                        "task": {"type": metadata["pipeline_tag"]},
                        "dataset": {"name": m.get("dataset") or dataset or "unknown", "type": m.get("dataset") or dataset or "unknown",
                                    **({"split": m["split"]} if m.get("split") else {})},
                        "metrics": [{"type": m["name"], "name": m["name"], "value": m["value"]}],
                    }
                    for m in metrics
                ],
            }
        ]
    load_target = repo_id or LOCAL_TARGET
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A `{family}` model from the zoo (plugin `{config.get('plugin')}` {config.get('plugin_version')}, "
        f"zoo {config.get('zoo_version')}).",
        "",
        "## Usage",
        "",
        "```python",
        "import zoo",
        "",
        f'model = zoo.load("{load_target}")',
        "samples = model.sample(16)  # (16, C, H, W) in [0, 1]" if samples_are_images else "# see the family's docs",
        "```",
        "",
    ]
    if metrics:
        lines += ["## Metrics", "", "| metric | value | dataset | split | command |", "| --- | ---: | --- | --- | --- |"]
        for m in metrics:
            value = f"{m['value']:.4g}" + (f" ± {m['stderr']:.2g} (s.e.)" if m.get("stderr") else "")
            lines.append(
                f"| {m['name']} | {value} | {m.get('dataset') or dataset or ''} | {m.get('split') or ''} | "
                f"`{m.get('command') or ''}` |"
            )
        lines.append("")
    lines += training_section(training)
    lines += ["## Config", "", "```json", json.dumps(config["config"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def training_section(training: Optional[dict[str, Any]]) -> list[str]:
    """The card's "Training" section: dataset, license, trainer, steps, time, hardware, final losses
    (a table) and the hyperparameters (JSON), from the ``training`` mapping ``zoo train`` passes."""
    if not training:
        return []
    details = {k: v for k, v in training.items() if k not in ("hyperparameters", "final_losses")}
    lines = ["## Training", "", "| | |", "| --- | --- |"]
    lines += [f"| {key.replace('_', ' ')} | {value} |" for key, value in details.items()]
    if training.get("final_losses"):
        losses = ", ".join(f"{k} = {v:.5g}" for k, v in training["final_losses"].items())
        lines.append(f"| final losses | {losses} |")
    lines.append("")
    if training.get("hyperparameters"):
        lines += ["Hyperparameters (`zoo_core.config.TrainConfig`):", "", "```json",
                  json.dumps(training["hyperparameters"], indent=2, sort_keys=True), "```", ""]
    return lines


def retarget(card: str, repo_id: str) -> str:
    """A card written for a local folder, rewritten to name ``repo_id`` (title and usage snippet).

    ``zoo push DIR org/name`` uploads a folder saved without a repo id; its card then shows
    ``zoo.load("org/name")`` as the Hub page's usage. Cards not written by the zoo are unchanged.
    """
    if f'zoo.load("{LOCAL_TARGET}")' not in card:
        return card
    lines = card.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# a ") and line.endswith(" model"):
            lines[i] = f"# {repo_id}"
            break
    return "\n".join(lines).replace(f'zoo.load("{LOCAL_TARGET}")', f'zoo.load("{repo_id}")')
