"""Demo data: one organization, a user per role, two projects on the bundled NIST catalog,
and evidence in every state with files of each kind the pages preview (PDF, PNG, text)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

from studio.bootstrap import Container
from studio.domains.evidence.schemas import Decision, EvidenceCreate, ReviewCreate
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.domains.users.service import create_organization, create_user
from studio.permissions import ProjectRole, Role
from studio.principal import Principal

ORG = "Acme Corp (demo)"
DOMAIN = "acme.example"
# NIST's OSCAL MODERATE baseline (public domain, see demo_data/LICENSE-oscal-content.md).
CATALOG = Path(__file__).parent.parent / "demo_data" / (
    "NIST_SP-800-53_rev5_MODERATE-baseline-resolved-profile_catalog-min.json"
)
FRAMEWORK_NAME = "NIST SP 800-53 rev5 MODERATE"
FRAMEWORK_KEY = "nist-800-53-rev5-moderate"

# A few Trust Services Criteria, enough for the demo's SOC 2 project to bind to.
SOC2_CSV = "\n".join([
    "ref,title,parent",
    "CC6,Logical and physical access controls,",
    "CC6.1,Logical access security software and infrastructure,CC6",
    "CC6.2,User registration and authorization,CC6",
    "CC6.3,Access removal and role changes,CC6",
    "CC7,System operations,",
    "CC7.2,Monitoring of system components for anomalies,CC7",
    "CC7.3,Evaluation of security events,CC7",
    "CC7.4,Incident response,CC7",
]).encode()

# (title, control, description, final state, files); items alternate between the projects.
EVIDENCE: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    ("Access control policy v3", "AC-1", "Approved policy covering account management.", "approved",
     ("access-control-policy-v3.pdf",)),
    ("Quarterly access review Q3", "AC-2", "Export of the Q3 user access review with sign-off.", "in_review",
     ("access-review-q3.pdf", "access-review-signoff.png", "access-review-export.txt")),
    ("MFA enforcement screenshot", "IA-2(1)", "Identity provider settings showing MFA for all admins.", "pending",
     ("idp-mfa-settings.png",)),
    ("Audit log retention config", "AU-11", "SIEM retention set to 400 days.", "rejected",
     ("siem-retention.txt",)),
    ("Incident response plan", "IR-8", "Plan reviewed by the security council.", "approved",
     ("incident-response-plan.pdf",)),
    ("Vulnerability scan report", "RA-5", "Monthly authenticated scan, no criticals open.", "pending", ()),
    ("Baseline configuration screenshots", "CM-2", "Hardened server image settings, November build.",
     "in_review", ("baseline-settings.png", "baseline-settings.txt")),
]


# -- demo files, made in code ------------------------------------------------------------
def demo_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica text) small enough to read by eye: header, xref, trailer."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = " ".join(f"({escape(line)}) '" for line in lines)
    content = (f"BT /F1 20 Tf 72 720 Td ({escape(title)}) Tj ET "
               f"BT /F1 12 Tf 72 690 Td 18 TL {body} ET").encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def demo_png(rows: int, accent: tuple[int, int, int], width: int = 480, height: int = 300) -> bytes:
    """A PNG that looks like a settings screen: a title bar and `rows` rows with switches."""
    white, grey, line, bar = (255, 255, 255), (203, 213, 225), (226, 232, 240), (13, 27, 51)
    pixels = [[white] * width for _ in range(height)]

    def fill(x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        for y in range(max(0, y0), min(height, y1)):
            pixels[y][max(0, x0):min(width, x1)] = [colour] * (min(width, x1) - max(0, x0))

    fill(0, 0, width, 44, bar)
    fill(16, 16, 150, 28, (185, 196, 216))
    for i in range(rows):
        top = 64 + i * 44
        fill(16, top + 10, 220 - 30 * (i % 3), top + 22, grey)
        fill(width - 76, top + 6, width - 20, top + 30, accent)
        fill(width - 44, top + 9, width - 23, top + 27, white)
        fill(16, top + 40, width - 16, top + 41, line)
    raw = b"".join(b"\x00" + bytes(channel for px in row for channel in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def demo_file(name: str, title: str) -> tuple[bytes, str]:
    """The content and declared type of a demo file, chosen by its extension."""
    if name.endswith(".pdf"):
        return demo_pdf(title, [f"Document: {name}", "Owner: Information Security",
                                "Status: approved by the security council",
                                "Scope: all production systems and their administrators"]), "application/pdf"
    if name.endswith(".png"):
        return demo_png(4 if "mfa" in name else 5, (17, 149, 107) if "mfa" in name else (47, 91, 234)), "image/png"
    lines = [f"# {title}", f"# exported from the demo tenant as {name}", ""]
    lines += [f"{i:02d}  setting-{i:02d} = enabled   checked 2026-11-{i:02d}" for i in range(1, 13)]
    return ("\n".join(lines) + "\n").encode(), "text/plain"


def _credentials_path(c: Container) -> Path:
    return c.settings.data_dir / "demo-credentials.json"


def load_demo(c: Container) -> tuple[list[tuple[str, str, str]], bool]:
    """Create the demo data unless present; return (role, e-mail, password) rows."""
    path = _credentials_path(c)
    exists = c.users.organization_exists(ORG)
    if exists and path.exists():
        return [tuple(row) for row in json.loads(path.read_text())], False
    if exists:
        raise SystemExit(f"demo organization exists but {path} is missing; reset the users' passwords")

    # The frameworks first, so the projects that name them start on their version; both in
    # the shared catalog (the operator's import), which every organization sees.
    c.frameworks.import_file(None, CATALOG.name, CATALOG.read_bytes(), key=FRAMEWORK_KEY,
                             name=FRAMEWORK_NAME)
    c.frameworks.import_file(None, "soc2.csv", SOC2_CSV, key="soc-2", name="SOC 2", version="2017")
    credentials: list[tuple[str, str, str]] = []
    users: dict[str, Any] = {}
    with c.db.write(actor="demo") as uow:
        org = create_organization(uow, ORG)
        for role in Role:
            password = secrets.token_urlsafe(12)
            email = f"{role.value.replace('_', '-')}@{DOMAIN}"
            users[role.value] = create_user(
                uow, org_id=org["id"], email=email, name=f"Demo {role.value.replace('_', ' ').title()}",
                role=role, password_hash=c.passwords.hash(password))
            credentials.append((role.value, email, password))

    def principal(role: str) -> Principal:
        p = c.auth.acting_as(users[role]["email"], "demo")
        assert p is not None
        return p

    manager, customer, auditor = principal("manager"), principal("customer"), principal("auditor")
    # Both projects on the one catalog the demo bundles (the pages show its name, not the key).
    projects = [
        c.projects.create(manager, ProjectCreate(name="FedRAMP Moderate readiness", framework=FRAMEWORK_KEY,
                                                 description="<p>Readiness for a FedRAMP Moderate "
                                                 "assessment against NIST SP 800-53 rev5.</p>")),
        c.projects.create(manager, ProjectCreate(name="SOC 2 Type II 2026", framework=FRAMEWORK_KEY,
                                                 description="<p>Annual SOC 2 audit, its controls tracked "
                                                 "against NIST SP 800-53 rev5 MODERATE.</p>")),
    ]
    for project in projects:
        for member, project_role in (("auditor", ProjectRole.AUDITOR),
                                     ("customer", ProjectRole.CUSTOMER),
                                     ("viewer", ProjectRole.VIEWER)):
            c.projects.add_member(manager, uuid.UUID(project["id"]),
                                  MemberAdd(userId=users[member]["id"], role=project_role))
    today = dt.date.today()
    for i, (title, control, description, state, files) in enumerate(EVIDENCE):
        project = projects[i % 2]
        item = c.evidence.create(customer, uuid.UUID(project["id"]), EvidenceCreate(
            title=title, description=description, controlId=control,
            effectiveDate=today - dt.timedelta(days=30 * i), expiresAt=today + dt.timedelta(days=365)))
        evidence_id = uuid.UUID(item["id"])
        for name in files:  # the same path as an upload: storage writer, then the record
            data, declared = demo_file(name, title)
            writer = c.documents.new_writer()
            writer.write(data)
            c.documents.record(customer, evidence_id, c.documents.finish(writer), file_name=name,
                               declared_type=declared, effective_date=None)
        if state == "pending":
            continue
        c.evidence.submit(customer, evidence_id)
        if state == "approved":
            c.evidence.review(auditor, evidence_id, ReviewCreate(decision=Decision.APPROVED, comment="Looks complete."))
        elif state == "rejected":
            c.evidence.review(auditor, evidence_id, ReviewCreate(
                decision=Decision.REJECTED, comment="Shows 90 days, the policy requires 365."))
    # Let the consumers (file processing, compliance score, activity, control index) catch
    # up now, so the first page a newcomer opens shows the score and the files' previews.
    c.dispatcher.drain(timeout=300)
    c.settings.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(credentials, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)
    return credentials, True
