"""Who may do what to a piece of evidence, and in which state: the one place of these rules.

pending --submit--> in_review --approve--> approved
   ^                    |
   |                    +--reject--> rejected --edit--> pending (resubmit)

Evidence is edited (and takes new files) while pending or rejected; editing rejected
evidence returns it to pending. Contributors act on evidence they created, roles with the
broader permission on any evidence of their projects. Auditors, managers and admins decide
on evidence in review, never on their own. The evidence and document services enforce
these rules (`check_*`); the web pages ask the same functions (`may_*`) to show only the
buttons that would work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from studio.domains.evidence.schemas import EvidenceStatus as Status
from studio.errors import AppError, forbidden
from studio.permissions import ProjectRole, allowed
from studio.principal import Principal

EDITABLE = frozenset({Status.PENDING, Status.REJECTED})


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rules need to know of one piece of evidence and its caller."""

    principal: Principal
    role: str | None  # the caller's role in the evidence's project (None: no access)
    created_by: uuid.UUID | None
    status: str

    @property
    def own(self) -> bool:
        return self.created_by == self.principal.user_id


def _may(subject: Subject, action: str) -> bool:
    """`action` on any evidence, or `action_own` on evidence the caller created."""
    role = subject.role
    if not role:
        return False
    return allowed(role, action) or (allowed(role, f"{action}_own") and subject.own)


def may_edit(subject: Subject) -> bool:
    return _may(subject, "evidence.update") and subject.status in EDITABLE


def _may_submit(subject: Subject) -> bool:
    role = subject.role or ""
    return allowed(role, "evidence.submit") and (allowed(role, "evidence.update") or subject.own)


def may_submit(subject: Subject) -> bool:
    return _may_submit(subject) and subject.status in EDITABLE


def may_review(subject: Subject) -> bool:
    return (allowed(subject.role or "", "evidence.review")
            and not subject.own and subject.status == Status.IN_REVIEW)


def reviewer_roles() -> frozenset[str]:
    """The project roles whose members decide on evidence in review: what a review queue
    asks the database for, with the status IN_REVIEW and "not created by the caller"
    (`may_review` for many rows at once)."""
    return frozenset(r.value for r in ProjectRole if allowed(r.value, "evidence.review"))


def may_override_quality(subject: Subject) -> bool:
    return allowed(subject.role or "", "evidence.review")


def check_edit(subject: Subject, what: str = "cannot be edited") -> None:
    if not _may(subject, "evidence.update"):
        raise forbidden("evidence.update")
    if subject.status not in EDITABLE:
        raise AppError("conflict", f"evidence that is {subject.status} {what}")


def check_submit(subject: Subject) -> None:
    if not _may_submit(subject):
        raise forbidden("evidence.submit")
    if subject.status not in EDITABLE:
        raise AppError("conflict", f"evidence that is {subject.status} cannot be submitted")


def check_review(subject: Subject) -> None:
    if not allowed(subject.role or "", "evidence.review"):
        raise forbidden("evidence.review")
    if subject.own:
        raise AppError("forbidden", "nobody reviews their own evidence")
    if subject.status != Status.IN_REVIEW:
        raise AppError("conflict", f"evidence that is {subject.status} is not awaiting review")


def check_delete(subject: Subject) -> None:
    if not _may(subject, "evidence.delete"):
        raise forbidden("evidence.delete")
    if subject.status not in EDITABLE and not subject.principal.org_wide:
        raise AppError("conflict", f"evidence that is {subject.status} can only be deleted by an admin")


def check_override_quality(subject: Subject) -> None:
    if not may_override_quality(subject):
        raise forbidden("override the quality score")
