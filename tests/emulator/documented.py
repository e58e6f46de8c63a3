"""Documented default fields the generators leave out, filled in after generation.

Close's OpenAPI lists these fields for the endpoints' objects (see
`tests/fixtures/documented_fields.json`); the emulator serves them so that the field-level test
covers them. Fixed values (no random draws): the rest of the dataset stays as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import Dataset

Obj = dict[str, Any]

SEQUENCE_REFS: Obj = {"sequence_id": None, "sequence_name": None,
                      "sequence_subscription_id": None}
AGENT: Obj = {"agent_action_reason": None, "agent_config_id": None}
DEFAULTS: dict[str, Obj] = {
    "Call": SEQUENCE_REFS,
    "SMS": {**SEQUENCE_REFS, **AGENT},
    "WhatsAppMessage": SEQUENCE_REFS,
    "Email": {**AGENT, "followup_sequence_id": None},
}


def fill_documented(ds: Dataset) -> None:
    for lead in ds.leads.values():
        n = len(ds.lead_contacts.get(lead["id"], []))
        lead.setdefault("contacts_summary", f"{n} contact{'s' if n != 1 else ''}")
        lead.setdefault("localtime", "2024-06-03T14:05:00+02:00")
        lead.setdefault("primary_address_summary", None)
        lead.setdefault("recent_calls", [])
        lead.setdefault("summaries", [])
    for contact in ds.contacts.values():
        for key, value in {"lead_suggestions_operation_id": None, "recent_calls": [],
                           "subscriptions": [], "timezone": "Europe/Berlin",
                           "timezone_source": "phone"}.items():
            contact.setdefault(key, value)
    for opp in ds.opps.values():
        for key, value in {"comment_summary": {"thread_id": None, "comment_count": 0},
                           "is_stalled": False, "lead_primary_email": None,
                           "lead_primary_phone": None, "stall_status": None,
                           "suggested_action": None}.items():
            opp.setdefault(key, value)
    for act in ds.acts.items.values():
        for key, value in DEFAULTS.get(act["_type"], {}).items():
            act.setdefault(key, value)
    for view in ds.objects.kinds["smart_views"]:
        for key, value in {"selected_fields": [], "shared_with": [],
                           "sharing_settings": None}.items():
            view.setdefault(key, value)
    for number in ds.objects.kinds["phone_numbers"]:
        for key, value in {"address_id": None, "bundle_id": None, "carrier_type": "mobile",
                           "forward_to_formatted": None, "is_premium": False,
                           "last_billed_price": 1.15, "next_billing_on": None,
                           "phone_numbers": [], "phone_numbers_formatted": [],
                           "press_1_to_accept": False, "supports_mms_to_countries": ["US"],
                           "supports_sms_to_countries": ["US", "CA"],
                           "voicemail_greeting_url": None, "was_ported": False}.items():
            number.setdefault(key, value)
