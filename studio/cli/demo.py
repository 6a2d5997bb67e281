"""Demo data: one organization, a user per role, two projects and evidence in every state."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
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

EVIDENCE = [
    ("Access control policy v3", "AC-1", "Approved policy covering account management.", "approved"),
    ("Quarterly access review Q3", "AC-2", "Export of the Q3 user access review with sign-off.", "in_review"),
    ("MFA enforcement screenshot", "IA-2(1)", "Identity provider settings showing MFA for all admins.", "pending"),
    ("Audit log retention config", "AU-11", "SIEM retention set to 400 days.", "rejected"),
    ("Incident response plan", "IR-8", "Plan reviewed by the security council.", "approved"),
    ("Vulnerability scan report", "RA-5", "Monthly authenticated scan, no criticals open.", "pending"),
]


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

    # The framework first, so the project that names it starts on its version.
    # Both in the shared catalog (the operator's import), which every organization sees.
    c.frameworks.import_file(None, CATALOG.name, CATALOG.read_bytes(), key="nist-800-53-rev5-moderate",
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
    projects = [
        c.projects.create(manager, ProjectCreate(name="FedRAMP Moderate readiness", framework=FRAMEWORK_NAME,
                                                 description="<p>Readiness for a FedRAMP Moderate "
                                                 "assessment against NIST SP 800-53 rev5.</p>")),
        c.projects.create(manager, ProjectCreate(name="SOC 2 Type II 2026", framework="SOC 2",
                                                 description="<p>Annual SOC 2 audit.</p>")),
    ]
    for project in projects:
        for member, project_role in (("auditor", ProjectRole.AUDITOR),
                                     ("customer", ProjectRole.CUSTOMER),
                                     ("viewer", ProjectRole.VIEWER)):
            c.projects.add_member(manager, uuid.UUID(project["id"]),
                                  MemberAdd(userId=users[member]["id"], role=project_role))
    today = dt.date.today()
    for i, (title, control, description, state) in enumerate(EVIDENCE):
        project = projects[i % 2]
        item = c.evidence.create(customer, uuid.UUID(project["id"]), EvidenceCreate(
            title=title, description=description, controlId=control,
            effectiveDate=today - dt.timedelta(days=30 * i), expiresAt=today + dt.timedelta(days=365)))
        if state == "pending":
            continue
        evidence_id = uuid.UUID(item["id"])
        c.evidence.submit(customer, evidence_id)
        if state == "approved":
            c.evidence.review(auditor, evidence_id, ReviewCreate(decision=Decision.APPROVED, comment="Looks complete."))
        elif state == "rejected":
            c.evidence.review(auditor, evidence_id, ReviewCreate(
                decision=Decision.REJECTED, comment="Shows 90 days, the policy requires 365."))
    # Let the consumers (compliance score, activity, control index) catch up now, so the
    # first page a newcomer opens shows the score.
    c.dispatcher.drain(timeout=300)
    c.settings.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(credentials, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)
    return credentials, True
