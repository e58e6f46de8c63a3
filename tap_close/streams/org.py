"""Organisation set-up: users, statuses, pipelines and custom field definitions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tap_close import schemas
from tap_close.client import id_path
from tap_close.streams.base import CloseStream
from tap_close.streams.changes import EventReplay
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


def organization_ids(stream: CloseStream) -> list[str]:
    """The organizations of the credential, from `/me/`."""
    me = stream._tap.me()
    return [o["id"] if isinstance(o, dict) else str(o) for o in me.get("organizations") or []]


class OrganizationsStream(CloseStream):
    """The credential's organization(s): `/me/` then `/organization/{id}/`."""

    name = "organizations"
    path = "/organization/"
    static_schema = schemas.ORGANIZATION

    def read_records(self, context: Context | None) -> Iterator[Any]:
        for org_id in organization_ids(self):
            yield dict(self._tap.organization(org_id))


class MembershipsStream(CloseStream):
    """Active and inactive memberships (no list endpoint: they live on the organization)."""

    name = "memberships"
    path = "/organization/"
    static_schema = schemas.MEMBERSHIP

    def read_records(self, context: Context | None) -> Iterator[Any]:
        for org_id in organization_ids(self):
            org = self._tap.organization(org_id)
            for key, active in (("memberships", True), ("inactive_memberships", False)):
                for membership in org.get(key) or []:
                    yield {**membership, "organization_id": org_id, "is_active": active}


class GroupsStream(EventReplay, CloseStream):
    """Groups with their member user ids (the list has no members: one GET per group)."""

    name = "groups"
    path = "/group/"
    static_schema = schemas.GROUP
    event_object_types = ("group",)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        for page in self.client.pages(self.path):
            for group in page:
                detail = self.client.get(id_path(self.path, group["id"]),
                                         {"_fields": "name,members"})
                yield {**group, **detail}
        yield from self.replay(context)


RolesStream = list_stream("roles", "/role/", schemas.ROLE, events=("role",))


UsersStream = list_stream("users", "/user/", schemas.USER)
LeadStatusesStream = list_stream("lead_statuses", "/status/lead/", schemas.LEAD_STATUS)
OpportunityStatusesStream = list_stream("opportunity_statuses", "/status/opportunity/",
                                        schemas.OPPORTUNITY_STATUS)
PipelinesStream = list_stream("pipelines", "/pipeline/", schemas.PIPELINE)
# Custom field definitions of each Close object type
LeadCustomFieldsStream = list_stream("lead_custom_fields", "/custom_field/lead/",
                                     schemas.CUSTOM_FIELD, page_size=1000)
ContactCustomFieldsStream = list_stream("contact_custom_fields", "/custom_field/contact/",
                                        schemas.CUSTOM_FIELD, page_size=1000)
OpportunityCustomFieldsStream = list_stream(
    "opportunity_custom_fields", "/custom_field/opportunity/", schemas.CUSTOM_FIELD,
    page_size=1000)
