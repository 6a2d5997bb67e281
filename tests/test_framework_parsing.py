"""OSCAL and custom-format parsing against the real NIST catalogs (no database)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.domains.frameworks.parsing import ImportInvalid, parse
from tests.frameworks_support import BASIC_JSON, BASIC_YAML, LOW, MODERATE, XML_SUBSET


def _by_ref(parsed):
    return {c.ref: c for c in parsed.controls}


def test_moderate_baseline_becomes_a_tree_of_labelled_controls():
    parsed = parse(MODERATE.name, MODERATE.read_bytes())
    controls = _by_ref(parsed)
    assert parsed.version == "5.1.1+u4"
    assert sum(c.kind == "control" for c in parsed.controls) == 287
    assert sum(c.kind == "family" for c in parsed.controls) == 18
    enh = controls["ac-2.1"]
    assert (enh.label, enh.parent_ref, enh.family) == ("AC-2(1)", "ac-2", "ac")
    assert enh.title == "Automated System Account Management"
    ac2 = controls["ac-2"]
    assert "{{" not in ac2.statement
    assert "c. Require [Assignment: prerequisites and criteria] for group and role membership;" in ac2.statement
    assert "AC-02a.[01] account types allowed" in ac2.objectives
    assert ac2.guidance.startswith("Examples of system account types")
    assert "ac-3" in ac2.related and all(r in controls for r in ac2.related)


def test_low_baseline_is_a_subset_of_moderate():
    low = {c.ref for c in parse(LOW.name, LOW.read_bytes()).controls if c.kind == "control"}
    moderate = {c.ref for c in parse(MODERATE.name, MODERATE.read_bytes()).controls if c.kind == "control"}
    assert len(low) == 149 and low <= moderate


def test_json_and_yaml_of_the_same_catalog_give_the_same_controls():
    from_json = parse(BASIC_JSON.name, BASIC_JSON.read_bytes())
    from_yaml = parse(BASIC_YAML.name, BASIC_YAML.read_bytes())
    assert [(c.ref, c.label, c.parent_ref, c.statement) for c in from_json.controls] == \
        [(c.ref, c.label, c.parent_ref, c.statement) for c in from_yaml.controls]
    selection = _by_ref(from_json)["s1.1.1"].statement
    assert "[Selection (one or more): initiating a device lock after [Assignment: a duration] of inactivity;" in selection


def test_xml_catalog_renders_params_weights_and_nested_enhancements():
    parsed = parse(XML_SUBSET.name, XML_SUBSET.read_bytes())
    controls = _by_ref(parsed)
    assert parsed.source_format == "oscal-xml" and parsed.version == "5.1.1-xml"
    assert controls["ac-1"].statement.startswith("a. Develop, document, and disseminate to [Assignment: personnel or roles]:")
    assert "1. [Selection (one or more): organization-level; mission/business process-level; system-level]" in \
        controls["ac-1"].statement
    assert controls["ac-2"].weight == 3.0
    assert controls["ac-2.1.1"].parent_ref == "ac-2.1" and controls["ac-2.1.1"].label == "AC-2(1)(a)"
    assert controls["ac-1"].related == ["ac-2"]


def test_every_problem_is_reported_with_its_json_pointer():
    bad = b'{"catalog": {"metadata": {}, "groups": [{"id": "g", "title": "G", "controls": [' \
          b'{"id": "a-1", "title": "A"}, {"id": "a-1", "title": "again"}, {"title": "no id"},' \
          b'{"id": "a-2", "props": [{"name": "weight", "value": "heavy"}]}]}]}}'
    with pytest.raises(ImportInvalid) as info:
        parse("bad.json", bad)
    problems = {(p.location, p.message.split(" (")[0]) for p in info.value.problems}
    assert ("/catalog/metadata/title", "a title is required") in problems
    assert ("/catalog/groups/0/controls/1/id", "duplicate id 'a-1'") in problems
    assert any(loc == "/catalog/groups/0/controls/2/id" for loc, _ in problems)
    assert ("/catalog/groups/0/controls/3/title", "a control needs a title") in problems
    assert ("/catalog/groups/0/controls/3/props/0/value", "weight must be a number") in problems


def test_yaml_problems_carry_the_line():
    bad = b"catalog:\n  metadata:\n    title: T\n  controls:\n    - id: x-1\n      title: ok\n    - id: x-1\n      title: dup\n"
    with pytest.raises(ImportInvalid) as info:
        parse("bad.yaml", bad)
    assert [p.location for p in info.value.problems] == ["/catalog/controls/1/id (line 7)"]


def test_malformed_files_are_refused_with_a_location():
    for name, data in (("x.json", b'{"catalog": '), ("x.xml", b"<catalog><group></catalog>"),
                       ("x.yaml", b"catalog: [\n"), ("x.xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><catalog/>')):
        with pytest.raises(ImportInvalid) as info:
            parse(name, data)
        assert info.value.problems[0].location


def test_custom_csv_with_nesting_and_weights():
    data = (b"ref,title,parent,label,statement,weight\n"
            b"CC1,Control environment,,CC1,,\n"
            b"CC1.1,Integrity and ethics,CC1,CC1.1,The entity demonstrates a commitment to integrity.,2\n")
    parsed = parse("soc2.csv", data, name="SOC 2 (ours)", version="2017")
    c = _by_ref(parsed)
    assert (parsed.name, parsed.version) == ("SOC 2 (ours)", "2017")
    assert c["CC1.1"].parent_ref == "CC1" and c["CC1.1"].weight == 2.0 and c["CC1.1"].family == "CC1"


def test_custom_csv_problems_name_their_lines():
    data = b"ref,title,parent,weight\nA,First,,\nA,Dup,,\nB,,Z,x\n"
    with pytest.raises(ImportInvalid) as info:
        parse("p.csv", data)
    got = [(p.location, p.message.split(" (")[0]) for p in info.value.problems]
    assert ("line 3", "duplicate ref 'A'") in got
    assert ("line 4", "title is required") in got
    assert any(loc == "line 4" and "weight" in msg for loc, msg in got)
    assert any(loc == "line 4" and "parent 'Z'" in msg for loc, msg in got)


def test_custom_yaml_nests_controls():
    data = b"""framework: {name: Internal policy, version: "2026.1"}
controls:
  - ref: POL-1
    title: Access
    controls:
      - ref: POL-1.1
        title: Reviews
        statement: Access is reviewed quarterly.
        weight: 2
"""
    parsed = parse("policy.yaml", data)
    c = _by_ref(parsed)
    assert parsed.name == "Internal policy" and c["POL-1.1"].parent_ref == "POL-1" and c["POL-1.1"].weight == 2


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["ac-1", "#ac-1", "related", "label", "statement", "weight", "{{ insert: param, p }}"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "title", "controls", "groups", "parts", "props", "params", "links", "name",
                         "value", "prose", "href", "rel", "select", "choice", "values", "label", "metadata",
                         "ref", "parent", "weight", "related", "statement"]),
        inner, max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(catalog=JSONISH, title=st.one_of(st.none(), st.text(max_size=5)))
def test_any_json_either_imports_or_is_refused_with_problems(catalog, title):
    doc = {"catalog": catalog if not isinstance(catalog, dict) else {**catalog, "metadata": {"title": title}}}
    try:
        parsed = parse("fuzz.json", json.dumps(doc).encode())
    except ImportInvalid as exc:
        assert exc.problems and all(p.location for p in exc.problems)
    else:
        assert any(c.kind == "control" for c in parsed.controls)


@settings(max_examples=200, deadline=None)
@given(controls=JSONISH)
def test_any_custom_yaml_either_imports_or_is_refused_with_problems(controls):
    import yaml

    doc = {"framework": {"name": "Fuzz"}, "controls": controls}
    try:
        parse("fuzz.yaml", yaml.safe_dump(doc).encode())
    except ImportInvalid as exc:
        assert exc.problems and all(p.location for p in exc.problems)
