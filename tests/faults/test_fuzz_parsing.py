"""Fuzzing with hypothesis: whatever text or structure reaches the catalog, a config, a repo id,
a SHA256SUMS file or a KEY=VALUE flag, the zoo answers with its own error (one that says what is
wrong) or a valid object, never a crash from deep inside. Deterministic (derandomize) and
bounded (max_examples), with no example database written to disk."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import zoo
from zoo_core import hub as zhub
from zoo_core.catalog import Catalog, CatalogEntry
from zoo_core.cli import UserError, _parse_assignments
from zoo_core.errors import CatalogError, InvalidConfigError, WeightsError, ZooError
from zoo_core.integrity import read_checksums
from zoo_core.loading import load_folder, validate_config

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SHA = "0" * 64
VALID_ENTRY = {
    "family": "ae", "plugin": "zoo-ae", "description": "d",
    "weights": {"package": "zoo_ae", "path": "weights/x", "sha256": {"config.json": SHA, "model.safetensors": SHA}},
}
ENTRY_KEYS = sorted(CatalogEntry.model_fields) + ["wieghts", "models", "version", ""]


def _catalog_of(data) -> Catalog:
    catalog = Catalog()
    catalog.add_source(data, "fuzz")
    return catalog


@FUZZ
@given(st.text(max_size=400))
def test_any_yaml_text_gives_a_catalog_or_a_catalog_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cat") / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        catalog = _catalog_of(path)
    except CatalogError as error:
        assert str(path) in str(error)
    else:
        assert all(isinstance(entry, CatalogEntry) for entry in catalog.entries.values())


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_give_a_catalog_or_a_catalog_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cat") / "registry.yaml"
    path.write_bytes(data)
    try:
        _catalog_of(path)
    except CatalogError:
        pass


@FUZZ
@given(json_values)
def test_any_structure_gives_a_catalog_or_a_catalog_error(data):
    try:
        _catalog_of(data if isinstance(data, dict) else {"version": 1, "models": data})
    except CatalogError:
        pass


@FUZZ
@given(st.sampled_from(ENTRY_KEYS), json_values, st.sampled_from(["set", "delete"]))
def test_one_mutated_field_of_a_valid_entry_is_named_or_accepted(key, value, action):
    entry = json.loads(json.dumps(VALID_ENTRY))
    if action == "set":
        entry[key] = value
    else:
        entry.pop(key, None)
    try:
        catalog = _catalog_of({"version": 1, "models": {"fuzzed": entry}})
    except CatalogError as error:
        assert "entry 'fuzzed'" in str(error) or "invalid catalog" in str(error)
    else:
        assert "fuzzed" in catalog.entries


@pytest.mark.parametrize("family", sorted(zoo.families()))
def test_any_config_dict_validates_or_names_the_field(family):
    config_class = zoo.families()[family].config_class()
    fields = sorted(config_class.model_fields) + ["not_a_field"]

    @FUZZ
    @given(st.dictionaries(st.sampled_from(fields), json_values, max_size=4))
    def check(data):
        try:
            config = validate_config(config_class, data, where="fuzz")
        except InvalidConfigError as error:
            assert str(error).startswith("invalid config in fuzz: ")
        else:
            assert config_class.model_validate(config.model_dump()) == config  # round trip

    check()


@FUZZ
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps)))
def test_any_config_json_is_refused_with_the_files_name(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("m")
    (folder / "config.json").write_text(text)
    (folder / "model.safetensors").write_bytes(b"\0" * 8)
    try:
        load_folder(folder, device="cpu")
    except (ZooError, FileNotFoundError) as error:
        assert str(folder) in str(error) or "family" in str(error)
    else:
        raise AssertionError("eight zero bytes are no weights")


repo_text = st.text(alphabet=string.ascii_letters + string.digits + "-_./@ \t\n\r\x00\x01\x7f~:%é", max_size=40)


@FUZZ
@given(repo_text)
@example("org/name\n")  # regex `$` matches before a final newline: these once passed validation
@example("org/name@main\n")
def test_repo_ids_and_revisions_are_parsed_or_refused(text):
    try:
        parsed = zhub.parse_repo_id(text)
    except zhub.InvalidRepoIdError:
        return
    if parsed is None:
        assert text.partition("@")[0].count("/") != 1
        return
    repo_id, revision = parsed
    for part in (repo_id, revision or ""):
        assert not any(c in part for c in " \t\n\r\x00\x01\x7f%é~:"), repr(text)
        assert ".." not in part
    assert zhub.validate_repo_id(repo_id) == repo_id


@FUZZ
@given(st.text(max_size=300))
def test_any_checksums_file_is_read_or_refused_with_its_line(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("m")
    (folder / "SHA256SUMS").write_text(text)
    try:
        listed = read_checksums(folder)
    except WeightsError as error:
        assert "SHA256SUMS line" in str(error)
    else:
        assert set(listed) <= {"model.safetensors"}
        assert all(len(digest) == 64 for digest in listed.values())


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=5), st.sampled_from(["--set", "--option", "--data-option"]))
def test_key_value_flags_parse_or_say_the_form(items, flag):
    try:
        parsed = _parse_assignments(items, flag)
    except UserError as error:
        assert flag in str(error)
    else:
        assert len(parsed) <= len(items)
