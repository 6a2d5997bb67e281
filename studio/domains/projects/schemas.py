"""Request and response bodies of the projects domain."""

from __future__ import annotations

import uuid
from enum import StrEnum

from studio.permissions import ProjectRole
from studio.validation import Input, Name, Output, Patch, RichText


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class ProjectCreate(Input):
    name: Name
    framework: Name
    description: RichText = ""
    status: ProjectStatus = ProjectStatus.ACTIVE


class ProjectUpdate(Patch):
    name: Name | None = None
    framework: Name | None = None
    description: RichText | None = None
    status: ProjectStatus | None = None


class ProjectRead(Output):
    id: uuid.UUID
    organizationId: uuid.UUID  # noqa: N815
    name: str
    description: str
    framework: str
    frameworkVersionId: uuid.UUID | None = None  # noqa: N815
    status: ProjectStatus
    complianceScore: float  # noqa: N815
    createdBy: uuid.UUID | None = None  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815
    version: int
    myRole: str | None = None  # noqa: N815


class MemberAdd(Input):
    userId: uuid.UUID  # noqa: N815
    role: ProjectRole


class MemberRead(Output):
    projectId: uuid.UUID  # noqa: N815
    userId: uuid.UUID  # noqa: N815
    role: ProjectRole
    addedAt: str  # noqa: N815
    email: str
    name: str
