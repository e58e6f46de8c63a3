"""The organization and its setup: users, memberships, roles, groups, statuses, pipelines,
custom field and custom object definitions, outcomes, playbooks, integration links, webhooks.
"""

from __future__ import annotations

from singer_sdk import typing as th

from tap_close.schemas.common import (
    AUTHOR_IDS,
    CUSTOM_FIELD_PROPERTIES,
    FREE_FORM,
    ID,
    JSONDict,
    _array,
    _datetimes,
    _strings,
    _undocumented,
    audit,
    deletable,
)

# -- Fragments --------------------------------------------------------------------------------

PIPELINE_STATUS = th.ObjectType(ID, *_strings("label", "type"))
LEAD_STATUS_PROPERTIES: tuple[th.Property, ...] = (ID, *_strings("label", "organization_id"))
PIPELINE_PROPERTIES: tuple[th.Property, ...] = (
    ID,
    *_strings("name"),
    _array("statuses", PIPELINE_STATUS),
    *audit(),  # Close sends these timestamps naive (UTC)
)
MEMBERSHIP_PROPERTIES: tuple[th.Property, ...] = (  # in the organization and in /me/
    ID,
    *_strings("user_id", "role_id", "organization_id"),
    _array("permissions_granted", th.StringType),
    th.Property("auto_record_calls", th.StringType, description="enabled, disabled or unset."),
    th.Property("track_email_opens", th.BooleanType),
    *_strings("user_email", "user_first_name", "user_last_name", "user_full_name", "user_phone"),
)

# -- Stream schemas ---------------------------------------------------------------------------

# GET /user/ shape; /me/ differs (``organizations`` holds full objects) and is not this stream.
USER: JSONDict = th.PropertiesList(
    ID,
    *_strings("email", "first_name", "last_name", "image"),
    _array("organizations", th.StringType),
    *audit(authors=False, organization=False),
).to_dict()

LEAD_STATUS: JSONDict = th.PropertiesList(*LEAD_STATUS_PROPERTIES).to_dict()

OPPORTUNITY_STATUS: JSONDict = th.PropertiesList(  # `type` per the examples, `status_type` per
    ID, *_strings("label", "type", "status_type", "pipeline_id", "organization_id")  # the docs
).to_dict()

PIPELINE: JSONDict = th.PropertiesList(*PIPELINE_PROPERTIES).to_dict()

CUSTOM_FIELD: JSONDict = th.PropertiesList(*CUSTOM_FIELD_PROPERTIES).to_dict()

SHARED_CUSTOM_FIELD: JSONDict = deletable(CUSTOM_FIELD)  # same shape, with ``associations``

CUSTOM_OBJECT_TYPE: JSONDict = deletable(  # dates come naive (UTC)
    th.PropertiesList(
        ID,
        *_strings("name", "name_plural", "description"),
        th.Property("api_create_only", th.BooleanType),
        _array("editable_with_roles", th.StringType),
        _array("fields", th.ObjectType(*CUSTOM_FIELD_PROPERTIES)),
        _array("back_reference_fields", th.ObjectType(*CUSTOM_FIELD_PROPERTIES)),
        *audit(),
    ).to_dict()
)

ORGANIZATION: JSONDict = th.PropertiesList(
    ID,
    *_strings("name", "currency", "currency_symbol", "plan_type"),
    _array("lead_statuses", th.ObjectType(*LEAD_STATUS_PROPERTIES)),
    _array("pipelines", th.ObjectType(*PIPELINE_PROPERTIES)),
    _array("memberships", th.ObjectType(*MEMBERSHIP_PROPERTIES)),
    _array("inactive_memberships", th.ObjectType(*MEMBERSHIP_PROPERTIES)),
    *audit(organization=False),
).to_dict()

# From the organization's ``memberships`` (active) and ``inactive_memberships``.
MEMBERSHIP: JSONDict = th.PropertiesList(
    *MEMBERSHIP_PROPERTIES,
    th.Property(
        "is_active",
        th.BooleanType,
        description="False for the organization's inactive memberships.",
    ),
).to_dict()

GROUP: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "organization_id"),
        _array("members", th.ObjectType(*_strings("user_id"))),
    ).to_dict()
)

ROLE: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "organization_id", "visibility_user_lcf_behavior"),
        th.Property("editable", th.BooleanType),
        _array("permissions", th.StringType),
        _array("visibility_user_lcf_ids", th.StringType),
    ).to_dict()
)

OUTCOME: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "description", "type"),
        _array("applies_to", th.StringType),
        *audit(),
    ).to_dict()
)

PLAYBOOK: JSONDict = deletable(  # created_at/updated_at, not date_*
    th.PropertiesList(
        ID,
        *_strings("name", "description", "summary_guidance", "organization_id"),
        th.Property("position", th.IntegerType),
        _array("custom_field_ids", th.StringType),
        _array("outcome_ids", th.StringType),
        *_datetimes("created_at", "updated_at", "archived_at"),
        *AUTHOR_IDS,
        *_strings("archived_by_id"),
    ).to_dict()
)

INTEGRATION_LINK: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("name", "url", "type"),
        *audit(),
    ).to_dict()
)

# Without ``signature_key``: a secret, which the tap never emits. Dates come naive (UTC).
WEBHOOK: JSONDict = deletable(
    th.PropertiesList(
        ID,
        *_strings("url", "status", "health_status", "pause_reason"),
        _array(
            "events",
            th.ObjectType(
                *_strings("object_type", "action"), th.Property("extra_filter", FREE_FORM)
            ),
        ),
        th.Property("verify_ssl", th.BooleanType),
        th.Property("recent_consecutive_fail_buckets_cnt", th.IntegerType),
        th.Property("counters", FREE_FORM, description="Delivery counters."),
        *_undocumented("latest_error"),
        *audit(),
    ).to_dict()
)
