"""``zoo families``: what each installed family is made of, read from its specs and its pydantic config."""

from __future__ import annotations

import json
from typing import Any


def describe(name: str) -> dict[str, Any]:
    """A family as plain data: plugin, description, config fields (type, default, description),
    sampler options, datasets, metrics and catalog models."""
    from .catalog import catalog
    from .plugins import family_distribution, get_family, state

    spec = get_family(name)
    dist = family_distribution(name)
    s = state()
    info: dict[str, Any] = {
        "family": name,
        "plugin": f"{dist.name} {dist.version}" if dist else None,
        "description": spec.description,
        "config_class": spec.config,
        "model_class": spec.model,
        "dataset": spec.dataset,
        # the family's default dataset and the others its plugin registers
        "datasets": sorted({d for d in [spec.dataset] if d}
                           | {d for d, r in s.datasets.items() if dist and r.distribution == dist}),
        "metrics": sorted(m for m, r in s.metrics.items() if r.spec.families is None or name in r.spec.families),
        "catalog": sorted(n for n, e in catalog().entries.items() if e.family == name),
    }
    try:
        info["config"] = config_fields(spec.config_class())
        model_class = spec.model_class()
        info["sampler_options"] = dict(model_class.sampler_options)
        info["log_prob"] = callable(getattr(model_class, "log_prob", None))
    except Exception as error:  # a broken model module: say so, list the rest
        info["error"] = f"{type(error).__name__}: {error}"
    return info


def config_fields(config_class) -> dict[str, dict[str, Any]]:
    """name -> {type, default, description} from the config's JSON schema (what users may set)."""
    schema = config_class.model_json_schema()
    fields = {}
    for field_name, prop in schema.get("properties", {}).items():
        fields[field_name] = {
            "type": _type_of(prop),
            "default": prop.get("default"),
            "description": prop.get("description", ""),
        }
    return fields


def _type_of(prop: dict) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_type_of(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type_of(prop.get('items', {}))}]"
    return prop.get("type", prop.get("$ref", "any").rsplit("/", 1)[-1])


def arguments(parser) -> None:
    parser.add_argument("names", nargs="*", metavar="FAMILY", help="only these families (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from .plugins import families

    names = args.names or list(families())
    described = [describe(name) for name in names]  # an unknown name: UnknownFamilyError with suggestions
    if args.json:
        print(json.dumps(described, indent=2, default=str))
        return 0
    if not described:
        print("no family is installed; 'zoo plugins' shows the plugins and their errors")
    for info in described:
        print(f"{info['family']}  ({info['plugin']})  {info['description']}")
        if "error" in info:
            print(f"  error: {info['error']} (see 'zoo plugins -v')")
            continue
        print(f"  config ({info['config_class']}):")
        for field_name, field in info["config"].items():
            print(f"    {field_name}: {field['type']} = {json.dumps(field['default'])}  {field['description']}".rstrip())
        options = info["sampler_options"]
        print("  sampler options:" + ("" if options else " none"))
        for option, text in options.items():
            print(f"    {option}: {text}")
        default = f" (zoo train reads {info['dataset']})" if info["dataset"] else ""
        print(f"  datasets: {', '.join(info['datasets']) or 'none'}{default}")
        print(f"  metrics: {', '.join(info['metrics']) or 'none'}" + ("; log_prob(x): bits_per_dim" if info["log_prob"] else ""))
        print(f"  catalog: {', '.join(info['catalog']) or 'none'}")
    return 0
