"""Reading framework files: OSCAL catalogs (JSON, YAML, XML) and the custom CSV/YAML format.

Parsing is pure: bytes in, a `ParsedFramework` (or every problem found, each with its
location) out. Nothing here touches the database, so a bad file changes nothing.
Locations are JSON pointers for JSON and YAML (plus the line for YAML), an XPath-like
path for XML, and the line number for CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from defusedxml import ElementTree as SafeET

OSCAL_NS = "http://csrc.nist.gov/ns/oscal/1.0"
_INSERT = re.compile(r"\{\{\s*insert:\s*param,\s*([^}\s]+)\s*\}\}")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
MAX_PROBLEMS = 200


@dataclass(slots=True)
class Problem:
    location: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class ImportInvalid(ValueError):
    """The file cannot be imported; `problems` lists every problem found, with its location."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the file")
        self.problems = problems


@dataclass(slots=True)
class ParsedControl:
    ref: str
    label: str
    kind: str  # "family" or "control"
    title: str
    parent_ref: str | None
    family: str | None
    statement: str = ""
    guidance: str = ""
    objectives: str = ""
    weight: float = 1.0
    related: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ParsedFramework:
    name: str
    version: str
    source_format: str
    digest: str
    controls: list[ParsedControl]
    description: str = ""
    dropped_links: int = 0


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# A part's declared Content-Type, for a file whose name has no known extension.
_DECLARED = {
    "text/csv": ".csv", "application/xml": ".xml", "text/xml": ".xml", "application/json": ".json",
    "application/yaml": ".yaml", "application/x-yaml": ".yaml", "text/yaml": ".yaml",
}  # fmt: skip


class UnknownFormat(ImportInvalid):
    """Neither the file's name, its declared type nor its first bytes say which format it is."""


def detect_format(filename: str, data: bytes, content_type: str | None = None) -> str:
    """oscal-json, oscal-yaml, oscal-xml, custom-yaml or custom-csv, from name, type and content."""
    name = filename.lower()
    if not name.endswith((".csv", ".xml", ".json", ".yaml", ".yml")):
        name += _DECLARED.get((content_type or "").partition(";")[0].strip().lower(), "")
    head = data[:4096].lstrip()
    if name.endswith(".csv"):
        return "custom-csv"
    if name.endswith(".xml") or head.startswith(b"<"):
        return "oscal-xml"
    if name.endswith(".json") or head.startswith(b"{"):
        return "oscal-json"
    if name.endswith((".yaml", ".yml")):
        return "oscal-yaml" if re.search(rb"(?m)^catalog\s*:", data[:65536]) else "custom-yaml"
    raise UnknownFormat([Problem("/", "unknown file type: name the file .json, .yaml, .yml, .xml or .csv "
                                      "or send its Content-Type")])


def parse(filename: str, data: bytes, *, name: str | None = None, version: str | None = None,
          content_type: str | None = None) -> ParsedFramework:
    """Parse any supported file into a framework, or raise ImportInvalid with every problem."""
    fmt = detect_format(filename, data, content_type)
    if fmt == "custom-csv":
        return parse_custom_csv(data, name=name or _stem(filename), version=version or "1", digest=digest_of(data))
    if fmt == "oscal-xml":
        doc = xml_to_oscal(data)
        lines: dict[str, int] = {}
    elif fmt == "oscal-json":
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            raise ImportInvalid([Problem(f"line {line}" if line else "/", f"invalid JSON: {exc}")]) from exc
        lines = {}
        if isinstance(doc, dict) and "catalog" not in doc and "controls" in doc:
            return parse_custom_json(doc, name=name, version=version, digest=digest_of(data))
    else:
        doc, lines = _load_yaml(data)
        if fmt == "custom-yaml":
            return parse_custom_yaml(doc, lines, name=name, version=version, digest=digest_of(data))
    return parse_oscal(doc, fmt, digest_of(data), lines=lines, name=name, version=version)


def _stem(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] or "framework"


# -- YAML with line numbers -------------------------------------------------------------
def _load_yaml(data: bytes) -> tuple[Any, dict[str, int]]:
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
        doc = yaml.safe_load(data)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "/"
        raise ImportInvalid([Problem(where, f"invalid YAML: {exc}")]) from exc
    lines: dict[str, int] = {}

    def walk(n: Any, pointer: str) -> None:
        lines[pointer or "/"] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(value, f"{pointer}/{_escape(str(key.value))}")
        elif isinstance(n, yaml.SequenceNode):
            for i, value in enumerate(n.value):
                walk(value, f"{pointer}/{i}")

    if node is not None:
        walk(node, "")
    return doc, lines


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


# -- OSCAL --------------------------------------------------------------------------------
class _Collector:
    def __init__(self, lines: dict[str, int]):
        self.problems: list[Problem] = []
        self.lines = lines

    def add(self, pointer: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            line = self.lines.get(pointer)
            self.problems.append(Problem(f"{pointer} (line {line})" if line else pointer, message))


def _seq(value: Any) -> list[Any]:
    """A list field as a list of objects; anything else (malformed input) as empty."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _label(obj: dict[str, Any]) -> str | None:
    """The plain label prop (NIST also ships zero-padded and SP 800-53A classes)."""
    labels = [p for p in _seq(obj.get("props")) if p.get("name") == "label"]
    for prop in labels:
        if not prop.get("class"):
            return str(prop.get("value"))
    return str(labels[0].get("value")) if labels else None


def _number(value: Any) -> float | None:
    """A number, or text that spells one; None for anything else."""
    if not isinstance(value, str | int | float):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _weight(obj: dict[str, Any], pointer: str, out: _Collector) -> float:
    props = obj.get("props")
    for i, prop in enumerate(props if isinstance(props, list) else []):
        if isinstance(prop, dict) and prop.get("name") == "weight":
            value = _number(prop.get("value"))
            if value is None:
                out.add(f"{pointer}/props/{i}/value", "weight must be a number")
                return 1.0
            if value < 0:
                out.add(f"{pointer}/props/{i}/value", "weight must not be negative")
            return value
    return 1.0


class _Params:
    """Renders `{{ insert: param, id }}` the way NIST prints it: [Assignment: label]."""

    def __init__(self) -> None:
        self.params: dict[str, dict[str, Any]] = {}

    def add(self, params: Any) -> None:
        for p in _seq(params):
            if isinstance(p.get("id"), str):
                self.params[p["id"]] = p
                alt = [x.get("value") for x in _seq(p.get("props")) if x.get("name") == "alt-identifier"]
                for a in alt:
                    self.params.setdefault(str(a), p)

    def render(self, text: str, depth: int = 0) -> str:
        if depth > 5:
            return text
        return _INSERT.sub(lambda m: self._one(m.group(1), depth), text)

    def _one(self, param_id: str, depth: int) -> str:
        p = self.params.get(param_id)
        if p is None:
            return f"[Assignment: {param_id}]"
        if isinstance(p.get("values"), list) and p["values"]:
            return ", ".join(self.render(str(v), depth + 1) for v in p["values"])
        select = p.get("select")
        if isinstance(select, dict):
            raw = select.get("choice")
            choices = [self.render(str(c), depth + 1) for c in (raw if isinstance(raw, list) else [])]
            how = " (one or more)" if select.get("how-many") == "one-or-more" else ""
            return f"[Selection{how}: {'; '.join(choices)}]"
        label = p.get("label")
        if label:
            return f"[Assignment: {self.render(str(label), depth + 1)}]"
        return f"[Assignment: {param_id}]"


def _flatten(part: dict[str, Any], params: _Params, indent: int = 0, include_self: bool = True) -> list[str]:
    lines: list[str] = []
    if include_self:
        prose = part.get("prose")
        label = _label(part)
        title = part.get("title")
        text = " ".join(x for x in (label, title, params.render(str(prose)) if prose else None) if x)
        if text:
            lines.append("  " * indent + text)
        indent += 1 if text else 0
    for sub in _seq(part.get("parts")):
        lines.extend(_flatten(sub, params, indent))
    return lines


def parse_oscal(doc: Any, fmt: str, digest: str, *, lines: dict[str, int] | None = None,
                name: str | None = None, version: str | None = None) -> ParsedFramework:
    """Turn an OSCAL catalog document (already decoded) into a framework."""
    out = _Collector(lines or {})
    if not isinstance(doc, dict) or not isinstance(doc.get("catalog"), dict):
        kinds = sorted(doc) if isinstance(doc, dict) else []
        hint = f" (found {', '.join(kinds[:3])}; only catalogs and resolved profile catalogs import)" if kinds else ""
        raise ImportInvalid([Problem("/catalog", "an OSCAL catalog object is required" + hint)])
    catalog = doc["catalog"]
    meta = catalog.get("metadata")
    title = None
    cat_version = None
    if not isinstance(meta, dict):
        out.add("/catalog/metadata", "metadata is required")
    else:
        title = meta.get("title")
        cat_version = meta.get("version")
        if not isinstance(title, str) or not title.strip():
            out.add("/catalog/metadata/title", "a title is required")
        if cat_version is not None and not isinstance(cat_version, str | int | float):
            out.add("/catalog/metadata/version", "version must be a string")
    parsed: list[ParsedControl] = []
    seen: dict[str, str] = {}
    params = _Params()

    def control(obj: Any, pointer: str, parent: str | None, family: str | None) -> None:
        if not isinstance(obj, dict):
            out.add(pointer, "a control must be an object")
            return
        cid = obj.get("id")
        ref: str | None = None  # stays None unless the control is kept
        if not isinstance(cid, str) or not _TOKEN.match(cid):
            out.add(f"{pointer}/id", "a control needs an id (a token such as ac-2.1)")
        elif cid in seen:
            out.add(f"{pointer}/id", f"duplicate id {cid!r} (first at {seen[cid]})")
        else:
            ref = cid
        raw_title = obj.get("title")
        ctitle = raw_title.strip() if isinstance(raw_title, str) else ""
        if not ctitle:
            out.add(f"{pointer}/title", "a control needs a title")
            ref = None
        if ref is not None:
            seen[ref] = pointer
        params.add(obj.get("params"))
        parts = obj.get("parts") or []
        if not isinstance(parts, list):
            out.add(f"{pointer}/parts", "parts must be a list")
            parts = []
        statement, guidance, objectives = [], [], []
        for part in parts:
            if not isinstance(part, dict):
                continue
            pname = part.get("name")
            if pname == "statement":
                statement.extend(_flatten(part, params, include_self=True))
            elif pname == "guidance":
                guidance.extend(_flatten(part, params))
            elif pname in ("assessment-objective", "objective"):
                objectives.extend(_flatten(part, params))
        related = [str(link.get("href", ""))[1:] for link in _seq(obj.get("links"))
                   if link.get("rel") == "related" and str(link.get("href", "")).startswith("#")]
        weight = _weight(obj, pointer, out)
        if ref is not None:
            parsed.append(ParsedControl(
                ref=ref, label=(_label(obj) or ref.upper())[:120], kind="control",
                title=ctitle[:500], parent_ref=parent, family=family,
                statement="\n".join(statement), guidance="\n".join(guidance),
                objectives="\n".join(objectives), weight=weight, related=related))
        for i, sub in enumerate(_list(obj.get("controls"), f"{pointer}/controls", out)):
            control(sub, f"{pointer}/controls/{i}", ref if ref is not None else parent, family)

    def group(obj: Any, pointer: str, parent: str | None) -> None:
        if not isinstance(obj, dict):
            out.add(pointer, "a group must be an object")
            return
        gid = obj.get("id")
        gtitle = obj.get("title")
        if not isinstance(gtitle, str) or not gtitle.strip():
            out.add(f"{pointer}/title", "a group needs a title")
            return
        if gid is None:
            # OSCAL allows groups without an id; give them a stable one from their position.
            gid = "group" + pointer.replace("/groups/", "-").replace("/catalog", "")
        if not isinstance(gid, str) or not _TOKEN.match(gid):
            out.add(f"{pointer}/id", "a group id must be a token")
            return
        if gid in seen:
            out.add(f"{pointer}/id", f"duplicate id {gid!r} (first at {seen[gid]})")
            return
        seen[gid] = pointer
        params.add(obj.get("params"))
        overview = []
        for part in _seq(obj.get("parts")):
            overview.extend(_flatten(part, params))
        parsed.append(ParsedControl(ref=gid, label=(_label(obj) or gid.upper())[:120], kind="family",
                                    title=gtitle.strip()[:500], parent_ref=parent, family=gid,
                                    statement="\n".join(overview)))
        for i, sub in enumerate(_list(obj.get("groups"), f"{pointer}/groups", out)):
            group(sub, f"{pointer}/groups/{i}", gid)
        for i, sub in enumerate(_list(obj.get("controls"), f"{pointer}/controls", out)):
            control(sub, f"{pointer}/controls/{i}", gid, gid)

    params.add(catalog.get("params"))
    for i, g in enumerate(_list(catalog.get("groups"), "/catalog/groups", out)):
        group(g, f"/catalog/groups/{i}", None)
    for i, c in enumerate(_list(catalog.get("controls"), "/catalog/controls", out)):
        control(c, f"/catalog/controls/{i}", None, None)
    if not any(c.kind == "control" for c in parsed) and not out.problems:
        out.add("/catalog", "the catalog has no controls")
    if out.problems:
        raise ImportInvalid(out.problems)
    # Statements were rendered as params were met; render again now that all are known.
    for c in parsed:
        c.statement = params.render(c.statement)
    dropped = 0
    known = {c.ref for c in parsed}
    for c in parsed:
        kept = [r for r in dict.fromkeys(c.related) if r in known and r != c.ref]
        dropped += len(c.related) - len(kept)
        c.related = kept
    return ParsedFramework(
        name=(name or str(title)).strip()[:255], version=str(version or cat_version or "1")[:100],
        source_format=fmt, digest=digest, controls=parsed, dropped_links=dropped,
        description=str((meta or {}).get("remarks") or "")[:20000])


def _list(value: Any, pointer: str, out: _Collector) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        out.add(pointer, "must be a list")
        return []
    return value


# -- OSCAL XML -> the JSON model -----------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _markup(el: Any) -> str:
    """Prose of a markup-multiline element, with <insert> turned back into its JSON form."""
    chunks: list[str] = []

    def walk(node: Any) -> None:
        if node.text:
            chunks.append(node.text)
        for child in node:
            tag = _local(child.tag)
            if tag == "insert":
                chunks.append(f"{{{{ insert: {child.get('type', 'param')}, {child.get('id-ref')} }}}}")
            else:
                if tag in ("p", "li") and chunks and not chunks[-1].endswith("\n"):
                    chunks.append("\n")
                walk(child)
            if child.tail:
                chunks.append(child.tail)

    walk(el)
    return re.sub(r"[ \t]*\n[ \t\n]*", "\n", "".join(chunks)).strip()


def xml_to_oscal(data: bytes) -> dict[str, Any]:
    """Parse an OSCAL XML catalog into the same structure as its JSON form."""
    try:
        root = SafeET.fromstring(data)
    except SafeET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise ImportInvalid([Problem(f"line {line}" if line else "/", f"invalid XML: {exc}")]) from exc
    except Exception as exc:  # defusedxml refuses entities and DTDs
        raise ImportInvalid([Problem("/", f"refused XML: {exc}")]) from exc
    if _local(root.tag) != "catalog":
        raise ImportInvalid([Problem(f"/{_local(root.tag)}", "the root element must be an OSCAL <catalog>")])

    def props(el: Any) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.attrib.items()} for c in el if _local(c.tag) == "prop"]

    def part(el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"id": el.get("id"), "name": el.get("name"), "props": props(el)}
        prose = [c for c in el if _local(c.tag) not in ("part", "prop", "link", "title")]
        if prose:
            holder = SafeET.fromstring("<x/>")
            holder.extend(prose)
            out["prose"] = _markup(holder)
        title = next((c for c in el if _local(c.tag) == "title"), None)
        if title is not None:
            out["title"] = _markup(title)
        out["parts"] = [part(c) for c in el if _local(c.tag) == "part"]
        return out

    def param(el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"id": el.get("id"), "props": props(el)}
        for c in el:
            tag = _local(c.tag)
            if tag == "label":
                out["label"] = _markup(c)
            elif tag == "value":
                out.setdefault("values", []).append(_markup(c))
            elif tag == "select":
                out["select"] = {"how-many": c.get("how-many"),
                                 "choice": [_markup(x) for x in c if _local(x.tag) == "choice"]}
        return out

    def node(el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"id": el.get("id"), "props": props(el)}
        title = next((c for c in el if _local(c.tag) == "title"), None)
        if title is not None:
            out["title"] = _markup(title)
        out["params"] = [param(c) for c in el if _local(c.tag) == "param"]
        out["links"] = [dict(c.attrib) for c in el if _local(c.tag) == "link"]
        out["parts"] = [part(c) for c in el if _local(c.tag) == "part"]
        out["groups"] = [node(c) for c in el if _local(c.tag) == "group"]
        out["controls"] = [node(c) for c in el if _local(c.tag) == "control"]
        return out

    catalog = node(root)
    meta_el = next((c for c in root if _local(c.tag) == "metadata"), None)
    meta: dict[str, Any] = {}
    if meta_el is not None:
        for c in meta_el:
            if _local(c.tag) in ("title", "version", "remarks"):
                meta[_local(c.tag)] = _markup(c)
    catalog["metadata"] = meta
    return {"catalog": catalog}


# -- the custom format ---------------------------------------------------------------------
CSV_COLUMNS = ("ref", "title", "parent", "label", "statement", "guidance", "weight")


def parse_custom_csv(data: bytes, *, name: str, version: str, digest: str) -> ParsedFramework:
    """CSV with a header row: ref,title[,parent,label,statement,guidance,weight]."""
    problems: list[Problem] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportInvalid([Problem("line 1", f"the file is not UTF-8: {exc}")]) from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("ref", "title") if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        wrong = []
        if missing:
            wrong.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            wrong.append(f"unknown column(s) {', '.join(unknown)}")
        msg = "; ".join(wrong)
        raise ImportInvalid([Problem("line 1", msg + f" (columns: {', '.join(CSV_COLUMNS)})")])
    reader.fieldnames = header
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}))
    items = [(f"line {n}", r) for n, r in rows]
    return _custom(items, name=name, version=version, digest=digest, fmt="custom-csv", problems=problems)


def parse_custom_yaml(doc: Any, lines: dict[str, int], *, name: str | None, version: str | None,
                      digest: str, fmt: str = "custom-yaml") -> ParsedFramework:
    """YAML: {framework: {name, version, description}, controls: [{ref, title, ..., controls: [...]}]}."""
    out = _Collector(lines)
    if not isinstance(doc, dict) or not isinstance(doc.get("controls"), list):
        raise ImportInvalid([Problem("/controls", "a list of controls is required (or an OSCAL catalog)")])
    fw = doc.get("framework") or {}
    if not isinstance(fw, dict):
        out.add("/framework", "framework must be an object with name and version")
        fw = {}
    items: list[tuple[str, dict[str, Any]]] = []

    def walk(seq: list[Any], pointer: str, parent: str | None) -> None:
        for i, obj in enumerate(seq):
            here = f"{pointer}/{i}"
            if not isinstance(obj, dict):
                out.add(here, "a control must be an object")
                continue
            row = {k: ("" if v is None else v) for k, v in obj.items() if k != "controls"}
            if parent and not row.get("parent"):
                row["parent"] = parent
            line = lines.get(here)
            items.append((f"{here} (line {line})" if line else here, row))
            children = obj.get("controls")
            if children is not None:
                if isinstance(children, list):
                    walk(children, f"{here}/controls", str(obj.get("ref") or "") or None)
                else:
                    out.add(f"{here}/controls", "must be a list")

    walk(doc["controls"], "/controls", None)
    fw_name = name or fw.get("name")
    if not fw_name:
        out.add("/framework/name", "a framework name is required")
    return _custom(items, name=str(fw_name or ""), version=str(version or fw.get("version") or "1"),
                   digest=digest, fmt=fmt, problems=out.problems,
                   description=str(fw.get("description") or ""))


def parse_custom_json(doc: dict[str, Any], *, name: str | None, version: str | None,
                      digest: str) -> ParsedFramework:
    """The custom format spelled in JSON, checked against the schema the OpenAPI document shows."""
    from pydantic import ValidationError

    from studio.domains.frameworks.schemas import FrameworkDocument

    try:
        checked = FrameworkDocument.model_validate(doc)
    except ValidationError as exc:
        raise ImportInvalid([
            Problem("/" + "/".join(_escape(str(p)) for p in e["loc"]),
                    "unknown field" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()[:MAX_PROBLEMS]
        ]) from exc
    return parse_custom_yaml(checked.model_dump(), {}, name=name, version=version, digest=digest,
                             fmt="custom-json")


def _custom(items: list[tuple[str, dict[str, Any]]], *, name: str, version: str, digest: str, fmt: str,
            problems: list[Problem], description: str = "") -> ParsedFramework:
    parsed: list[ParsedControl] = []
    seen: dict[str, str] = {}
    for where, row in items:
        row = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}
        unknown = set(row) - set(CSV_COLUMNS) - {"related"}
        if unknown:
            problems.append(Problem(where, f"unknown field(s) {', '.join(sorted(unknown))}"))
        ref = str(row.get("ref") or "").strip()
        title = str(row.get("title") or "").strip()
        if not ref or not _TOKEN.match(ref) or len(ref) > 120:
            problems.append(Problem(where, "ref is required: letters, digits, '.', '-', '_' (max 120)"))
            continue
        if ref in seen:
            problems.append(Problem(where, f"duplicate ref {ref!r} (first at {seen[ref]})"))
            continue
        seen[ref] = where
        if not title:
            problems.append(Problem(where, "title is required"))
        weight = 1.0
        if str(row.get("weight", "")).strip():
            try:
                weight = float(row["weight"])
                if weight < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(Problem(where, f"weight must be a number >= 0, not {row['weight']!r}"))
        related = row.get("related") or []
        if isinstance(related, str):
            related = [r.strip() for r in related.split(";") if r.strip()]
        elif not isinstance(related, list):
            problems.append(Problem(where, "related must be a list of refs (or refs separated by ';')"))
            related = []
        parsed.append(ParsedControl(
            ref=ref, label=str(row.get("label") or ref)[:120], kind="control", title=title[:500],
            parent_ref=str(row.get("parent") or "").strip() or None, family=None,
            statement=str(row.get("statement") or ""), guidance=str(row.get("guidance") or ""),
            weight=weight, related=[str(r) for r in related]))
    by_ref = {c.ref: c for c in parsed}
    for c in parsed:
        if c.parent_ref and c.parent_ref not in by_ref:
            problems.append(Problem(seen[c.ref], f"parent {c.parent_ref!r} is not a ref in this file"))
        for r in c.related:
            if r not in by_ref:
                problems.append(Problem(seen[c.ref], f"related {r!r} is not a ref in this file"))
    # A cycle in parent refs would make the tree infinite.
    for c in parsed:
        steps, cur = 0, c
        while cur.parent_ref and cur.parent_ref in by_ref and steps <= len(parsed):
            cur = by_ref[cur.parent_ref]
            steps += 1
        if steps > len(parsed):
            problems.append(Problem(seen[c.ref], "parent refs form a cycle"))
            break
    if not parsed and not problems:
        problems.append(Problem("/", "the file has no controls"))
    if problems:
        raise ImportInvalid(problems[:MAX_PROBLEMS])
    for c in parsed:
        top = c
        while top.parent_ref:
            top = by_ref[top.parent_ref]
        c.family = top.ref
    return ParsedFramework(name=name.replace("\x00", "").strip()[:255], version=version.replace("\x00", "")[:100],
                           source_format=fmt, digest=digest, controls=parsed,
                           description=description.replace("\x00", ""))
