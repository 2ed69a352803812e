"""Model cards: the README.md that save_pretrained writes next to the weights.

Cards are built with huggingface_hub's ``ModelCard``, ``ModelCardData`` and ``EvalResult``, so
their metadata is what the Hub expects: a canonical ``model-index`` (one result per task, dataset
and split), Hub license ids (``other`` with ``license_name``/``license_link`` where none fits),
Hub dataset ids (a registered dataset names its id with ``DatasetSpec.hub_id``), ``arxiv:`` tags
for the family's papers (``FamilySpec.papers``), metric settings as the metric's ``args``, and the
command that measured each metric as the result's ``source``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

#: What the usage snippet loads when the card is written without a repo id (a local folder).
LOCAL_TARGET = "path/to/this/folder"
#: The sample grid (or turntable frame) that save_pretrained writes and the card shows.
SAMPLE_IMAGE = "samples.png"
#: Where the results' commands come from: ``zoo eval`` (the model-index ``source`` needs a URL).
ZOO_URL = "https://github.com/zoo-project/zoo"

#: The license ids the Hub accepts in ``license:`` (its metadata validator refuses others).
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr
mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license
fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())

_SLUG = re.compile(r"[^a-z0-9]+")


def hub_license(license: Optional[str], license_name: Optional[str] = None,
                license_link: Optional[str] = None) -> dict[str, str]:
    """The card's license fields: a Hub id (``"CC-BY-SA-3.0"`` -> ``cc-by-sa-3.0``), or ``other``
    with a ``license_name`` and ``license_link``. Anything else is refused, saying what to pass."""
    if not license:
        return {}
    key = license.strip().lower()
    if key not in HUB_LICENSES:
        raise ValueError(
            f"license {license!r} is not a Hub license id (e.g. apache-2.0, mit, cc-by-4.0, cc-by-sa-3.0); "
            "for any other license pass license='other', license_name='a-short-slug', license_link='URL'"
        )
    if key != "other":
        return {"license": key}
    if not license_name or not license_link:
        raise ValueError("license='other' needs license_name (a short slug) and license_link (a URL to its text)")
    return {"license": "other", "license_name": _SLUG.sub("-", license_name.lower()).strip("-"),
            "license_link": license_link}


def describe_dataset(name: Optional[str]) -> tuple[Optional[str], str, str]:
    """``(hub_id or None, model-index type, pretty name)`` for a registered dataset name, a Hub id
    (``org/name``) or a free description. Only Hub ids go into the card's ``datasets:``."""
    if not name:
        return None, "unknown", "unknown"
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name):
        return name, name, name
    try:
        from .plugins import datasets

        spec = datasets().get(name)
    except Exception:  # a card is still written when plugins cannot be read
        spec = None
    hub_id = getattr(spec, "hub_id", None)
    pretty = getattr(spec, "pretty_name", None) or name
    return hub_id, hub_id or _SLUG.sub("-", name.lower()).strip("-"), pretty


def model_card(
    config: Mapping[str, Any],
    *,
    name: str,
    metrics: Iterable[Mapping[str, Any]] = (),
    dataset: Optional[str] = None,
    license: Optional[str] = None,
    license_name: Optional[str] = None,
    license_link: Optional[str] = None,
    repo_id: Optional[str] = None,
    samples_are_images: bool = True,
    papers: Sequence[str] = (),
    citation: Optional[str] = None,
    sample_image: Optional[str] = None,
    figures: Sequence[tuple[str, str]] = (),
    training: Optional[Mapping[str, Any]] = None,
    load_name: Optional[str] = None,
    renderer: bool = False,
) -> str:
    """A Hub model card (``ModelCard`` text): metadata, samples, usage, metrics, training, citation.

    ``metrics``: dicts with ``name``, ``value`` and optionally ``dataset``, ``split``, ``command``
    (the result's source), ``args`` (the metric's settings) and ``notes``. ``training``: what
    ``zoo train`` knows (``dataset``, ``license``, ``hyperparameters``, ``final_losses``,
    ``hardware``, ``seconds``, ``steps``...); every key is shown, the known ones first.
    ``renderer``: the model renders scenes; its image is a turntable frame. ``figures``: more
    ``(file name, caption)`` pictures shown after the samples.
    The usage snippet loads ``repo_id``, else ``load_name`` (a catalog name), else a placeholder
    path that ``zoo push`` replaces with the repo id.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    training = dict(training or {})
    dataset = dataset or training.get("dataset")
    license = license or training.get("license")
    family = config["family"]
    task = "unconditional-image-generation" if samples_are_images else "image-to-3d"
    metrics = [dict(m) for m in metrics]

    dataset_names = [d for d in dict.fromkeys([dataset, *(m.get("dataset") for m in metrics)]) if d]
    hub_ids = list(dict.fromkeys(hub_id for hub_id, _, _ in map(describe_dataset, dataset_names) if hub_id))

    # one model-index result per dataset, configuration and split, as the Hub merges them: two zoo
    # datasets of the same Hub dataset (mnist, mnist-binarized) are one result with both commands.
    # Each group: (the first member's dataset name, its metrics)
    groups: dict[tuple, tuple[str, list[dict[str, Any]]]] = {}
    for m in metrics:
        _, dataset_type, pretty = describe_dataset(m.get("dataset") or dataset)
        groups.setdefault((dataset_type, m.get("dataset_config"), m.get("split")), (pretty, []))[1].append(m)
    results = []
    for (dataset_type, dataset_config, split), (pretty, members) in groups.items():
        commands = "; ".join(dict.fromkeys(m["command"] for m in members if m.get("command"))) or None
        for m in members:
            results.append(EvalResult(
                task_type=task, dataset_type=dataset_type, dataset_name=pretty, dataset_config=dataset_config,
                dataset_split=split,
                metric_type=m["name"], metric_name=m["name"], metric_value=m["value"], metric_args=m.get("args") or None,
                source_name=commands, source_url=ZOO_URL if commands else None,
            ))

    data = ModelCardData(
        library_name="zoo",
        pipeline_tag=task,
        tags=["zoo", f"zoo-{family}", family, "generative", *(f"arxiv:{p}" for p in papers)],
        datasets=hub_ids or None,
        model_name=name,
        eval_results=results or None,
        **hub_license(license, license_name, license_link),
    )
    load_target = repo_id or load_name or LOCAL_TARGET
    body = [f"# {name}", "", f"A `{family}` model from the zoo (plugin `{config.get('plugin')}` "
            f"{config.get('plugin_version')}, zoo {config.get('zoo_version')})."]
    if sample_image:
        what = "A rendered view" if renderer or not samples_are_images else "Samples"
        how = "the first turntable frame" if what != "Samples" else "seed 0"
        body += ["", f"![{what} from {name}]({sample_image})", "",
                 f"*{what} (`{sample_image}`, written by `save_pretrained`: {how}).*"]
    for file, caption in figures:
        body += ["", f"![{file}]({file})", "", f"*{caption}*"]
    body += ["", "## Usage", "", "```python", "import zoo", "", f'model = zoo.load("{load_target}")',
             "samples = model.sample(16)  # (16, C, H, W) in [0, 1]" if samples_are_images
             else "views = model.render(model.turntable_cameras(8))  # {'rgb': (8, H, W, 3), 'depth': ...}",
             "```"]
    if metrics:
        body += ["", "## Metrics", "", "| metric | value | dataset | split | settings | command |",
                 "| --- | ---: | --- | --- | --- | --- |"]
        for m in metrics:
            settings = ", ".join(f"{k}={v}" for k, v in (m.get("args") or {}).items())
            value = f"{m['value']:.6g}" + (f" ± {m['stderr']:.2g} (s.e.)" if m.get("stderr") else "")
            body.append(f"| {m['name']} | {value} | {describe_dataset(m.get('dataset') or dataset)[2]} | "
                        f"{m.get('split') or ''} | {settings} | `{m.get('command') or ''}` |")
        notes = [f"- {m['name']}: {m['notes']}" for m in metrics if m.get("notes")]
        if notes:
            body += ["", *notes]
    if training:
        body += ["", "## Training", "", *_training_lines(training)]
    body += ["", "## Config", "", "```json", json.dumps(config["config"], indent=2, sort_keys=True), "```"]
    if citation:
        body += ["", "## Citation", "", "```bibtex", citation.strip(), "```"]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


_TRAINING_LABELS = {
    "dataset": "Dataset", "license": "License", "steps": "Steps", "seconds": "Training time",
    "samples_per_second": "Throughput", "hardware": "Hardware", "final_losses": "Final losses",
    "hyperparameters": "Hyperparameters",
}


def _training_lines(training: Mapping[str, Any]) -> list[str]:
    lines = []
    keys = [k for k in _TRAINING_LABELS if k in training] + [k for k in training if k not in _TRAINING_LABELS]
    for key in keys:
        value = training[key]
        label = _TRAINING_LABELS.get(key, key.replace("_", " ").capitalize())
        if key == "dataset":
            value = describe_dataset(value)[2] + (f" (`{describe_dataset(value)[0]}`)" if describe_dataset(value)[0] else "")
        elif key == "seconds":
            value = f"{float(value):.1f} s"
        elif key == "samples_per_second":
            value = f"{float(value):.1f} samples/s"
        if isinstance(value, Mapping):
            lines.append(f"- {label}:")
            lines += [f"  - `{k}`: {_short(v)}" for k, v in value.items()]
        else:
            lines.append(f"- {label}: {_short(value)}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def retarget(card: str, repo_id: str) -> str:
    """A zoo card rewritten to name ``repo_id``: its title, ``model_name`` in the model-index, and
    the usage snippet's ``zoo.load(...)``.

    ``zoo push DIR org/name`` uploads a folder saved under another name (a local folder, a catalog
    model); its card then shows ``zoo.load("org/name")`` as the Hub page's usage. Cards not written
    by the zoo are unchanged.
    """
    from huggingface_hub import ModelCard

    parsed = ModelCard(card, ignore_metadata_errors=True)
    if parsed.data.library_name != "zoo" or "zoo.load(" not in parsed.text:
        return card
    old_name = parsed.data.model_name
    if old_name is not None or parsed.data.eval_results:
        parsed.data.model_name = repo_id
    text = re.sub(r'zoo\.load\("[^"]*"\)', f'zoo.load("{repo_id}")', parsed.text, count=1)
    if old_name and old_name != repo_id:
        text = text.replace(f"# {old_name}\n", f"# {repo_id}\n", 1).replace(f"from {old_name}](", f"from {repo_id}](", 1)
    else:
        text = re.sub(r"^# .*$", f"# {repo_id}", text, count=1, flags=re.M)
    return f"---\n{parsed.data.to_yaml()}\n---\n{text}"
