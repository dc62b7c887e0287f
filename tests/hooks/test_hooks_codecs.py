"""The vendor codecs, pure: HubSpot record envelopes, search bodies, error kinds and webhook events; Feishu query
items, instance details, forms and approval events."""

from __future__ import annotations

import json

import pytest

from bridge.hooks import feishu_codec as fs
from bridge.hooks import hubspot_codec as hs
from bridge.hooks.errors import RecordErrorKind


def test_modified_property_of_contacts_and_other_objects() -> None:
    assert hs.modified_property("contacts") == hs.modified_property("0-1") == "lastmodifieddate"
    assert hs.modified_property("deals") == hs.modified_property("companies") == "hs_lastmodifieddate"


def test_count_body_asks_for_one_record_in_the_half_open_range() -> None:
    body = hs.count_body("deals", 100, 200)
    assert body == {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "100"},
                    {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": "200"},
                ]
            }
        ],
        "limit": 1,
        "properties": ["hs_object_id"],
    }
    assert (
        hs.count_body("contacts", 0, 1)["filterGroups"][0]["filters"][0]["propertyName"] == "lastmodifieddate"
    )


def test_search_body_sorts_ascending_by_the_given_property() -> None:
    body = hs.search_body([hs.search_filter("hs_object_id", "GT", 7)], 50, ("a", "b"), "hs_object_id")
    assert body["sorts"] == [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    assert body["filterGroups"] == [
        {"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "7"}]}
    ]
    assert body["limit"] == 50
    assert body["properties"] == ["a", "b"]


def test_object_id_and_property_value_fall_back_to_the_envelope() -> None:
    obj = {"id": "5", "properties": {"dealname": "x"}, "updatedAt": "2026-01-01T00:00:00Z"}
    assert hs.object_id(obj) == "5"
    assert hs.object_id({"properties": {"hs_object_id": "6"}}) == "6"
    assert hs.object_id({"properties": "junk"}) is None
    props = obj["properties"]
    assert hs.property_value(obj, props, "hs_lastmodifieddate") == "2026-01-01T00:00:00Z"
    assert hs.property_value(obj, props, "dealname") == "x"
    assert hs.property_value(obj, props, "amount") is None


def test_computed_properties_are_not_writable() -> None:
    assert not hs.is_writable("hs_object_id")
    assert not hs.is_writable("createdate")
    assert hs.is_writable("dealname")


def test_record_of_reads_creation_and_modification_times() -> None:
    obj = {"id": 9, "properties": {"name": "甲", "createdate": "1", "hs_lastmodifieddate": "2"}}
    assert hs.record_of(obj, "companies") == hs.CrmRecord("9", obj["properties"], "1", "2")
    bare = {"id": "3", "properties": None, "createdAt": "c", "updatedAt": "u"}
    assert hs.record_of(bare, "contacts") == hs.CrmRecord("3", {}, "c", "u")


@pytest.mark.parametrize(
    ("category", "kind"),
    [
        ("OBJECT_NOT_FOUND", RecordErrorKind.NOT_FOUND),
        ("VALIDATION_ERROR", RecordErrorKind.VALIDATION),
        ("CONFLICT", RecordErrorKind.CONFLICT),
        ("DUPLICATE_INPUT", RecordErrorKind.DUPLICATE_INPUT),
        ("MISSING_ID", RecordErrorKind.MISSING_ID),
        ("MISSING_RESULT", RecordErrorKind.MISSING_RESULT),
        ("RATE_LIMITS", RecordErrorKind.OTHER),
        (None, RecordErrorKind.OTHER),
    ],
)
def test_error_kind_of_each_category(category: str | None, kind: RecordErrorKind) -> None:
    assert hs.error_kind(category) is kind


def test_webhook_change_of_typed_generic_and_association_events() -> None:
    typed = hs.webhook_change(
        {
            "subscriptionType": "deal.propertyChange",
            "objectId": 5,
            "eventId": 1,
            "occurredAt": 10,
            "appId": 7,
            "portalId": 8,
        }
    )
    assert typed == hs.CrmChange("deal", "propertyChange", 5, 1, 10, app_id="7", portal_id="8")
    generic = hs.webhook_change({"subscriptionType": "object.creation", "objectTypeId": "0-2", "objectId": 6})
    assert (generic.record_type, generic.change, generic.record_id) == ("company", "creation", 6)
    assoc = hs.webhook_change(
        {
            "subscriptionType": "object.associationChange",
            "fromObjectTypeId": "0-1",
            "fromObjectId": 4,
            "objectId": 99,
        }
    )
    assert (assoc.record_type, assoc.record_id) == ("contact", 4)
    assert hs.webhook_change({"subscriptionType": "ticket.creation"}).record_type is None
    assert hs.webhook_change({}).app_id == ""


def test_query_items_and_instance_refs() -> None:
    item = {"instance": {"code": "I-1", "start_time": "7200000", "end_time": "0"}}
    assert fs.query_item_ok(item)
    assert not fs.query_item_ok({"instance": {"code": 5}})
    assert not fs.query_item_ok(["x"])
    assert fs.query_item_code(item) == "I-1"
    assert fs.instance_ref(item) == fs.InstanceRef("I-1", 7_200_000, None)
    assert fs.instance_ref(
        {"instance": {"code": "I-2", "start_time": True, "end_time": "9"}}
    ) == fs.InstanceRef("I-2", None, 9)


def test_instance_detail_fields() -> None:
    detail = {
        "instance_code": "I-3",
        "user_id": "u1",
        "start_time": "100",
        "end_time": 300,
        "timeline": [{"create_time": "250"}, "junk"],
        "form": "[]",
        "status": "APPROVED",
    }
    assert fs.instance_code(detail) == "I-3"
    assert fs.instance_applicant(detail) == "u1"
    assert fs.instance_applicant({}) == ""
    assert fs.instance_start_ms(detail) == 100
    assert fs.instance_start_ms({"start_time": "x"}) is None
    assert fs.instance_updated_ms(detail) == 300
    assert fs.instance_updated_ms({"start_time": "9" * 16}) is None  # not a millisecond timestamp
    assert fs.instance_attribute(detail, "updated_at") == 300
    assert fs.instance_attribute(detail, "status") == "APPROVED"
    assert fs.instance_form(detail) == "[]"


def test_decode_form_reads_ids_and_custom_ids_and_names_what_is_wrong() -> None:
    form = json.dumps([{"id": "w1", "custom_id": "amount", "value": 3}, {"id": "w1", "value": 4}, "junk"])
    assert fs.decode_form(form, 1000) == {"w1": 3, "amount": 3}
    assert fs.decode_form([{"id": "w2", "value": "x"}], 1000) == {"w2": "x"}
    for raw, kind, detail in (
        (None, "missing", ""),
        ("[" * 20, "too_long", "20"),
        ("{", "not_json", ""),
        ('{"a": 1}', "not_a_list", "dict"),
    ):
        with pytest.raises(fs.FormError) as caught:
            fs.decode_form(raw, 10)
        assert (caught.value.kind, caught.value.detail) == (kind, detail)


def test_form_entries_encode_compactly_and_keep_chinese() -> None:
    entry = fs.form_entry("w1", "input", "甲")
    assert entry == {"id": "w1", "type": "input", "value": "甲"}
    assert fs.encode_form([entry]) == '[{"id":"w1","type":"input","value":"甲"}]'
    assert fs.encode_form("[]") == "[]"


def test_approval_event_of_v1_and_v2_envelopes() -> None:
    event = {
        "instance_code": "I-1",
        "approval_code": "A",
        "operate_time": "5",
        "app_id": "cli",
        "type": "t",
        "tenant_key": "tk",
    }
    v1 = fs.approval_event({"type": "event_callback", "token": "tok", "uuid": "d1", "event": event})
    assert v1 == fs.ApprovalEvent("tok", "cli", "tk", "t", "d1", "I-1", "A", ("5", None, None))
    header = {
        "token": "tok",
        "app_id": "cli",
        "tenant_key": "tk2",
        "event_type": "t2",
        "event_id": "d2",
        "create_time": "6",
    }
    v2 = fs.approval_event({"schema": "2.0", "header": header, "event": {"instance_code": "I-2"}})
    assert v2 == fs.ApprovalEvent("tok", "cli", "tk2", "t2", "d2", "I-2", None, (None, None, "6"))
    with pytest.raises(fs.EnvelopeError, match="no event object"):
        fs.approval_event({"type": "event_callback"})
    with pytest.raises(fs.EnvelopeError, match="neither"):
        fs.approval_event({"event": {}})


def test_challenge_only_for_the_url_check() -> None:
    assert fs.challenge_of({"type": "url_verification", "token": "t", "challenge": "c"}) == fs.Challenge(
        "t", "c"
    )
    assert fs.challenge_of({"type": "event_callback"}) is None


def test_modified_value_reads_only_the_property() -> None:
    assert hs.modified_value({"properties": {"hs_lastmodifieddate": "5"}, "updatedAt": "6"}, "deals") == "5"
    assert hs.modified_value({"properties": {}, "updatedAt": "6"}, "deals") is None
    assert hs.modified_value({"properties": {"lastmodifieddate": "7"}}, "contacts") == "7"
    assert hs.modified_value({"properties": "junk"}, "deals") is None


def test_owner_of_keeps_the_names_apart() -> None:
    owner = hs.owner_of({"id": 31, "lastName": " 张 ", "firstName": "三", "email": "z@example.com"})
    assert owner == hs.CrmOwner("31", "张", "三", "z@example.com")
    assert hs.owner_of({"id": "32"}) == hs.CrmOwner("32", "", "", "")


def test_property_errors_are_validation_kinds() -> None:
    assert hs.error_kind("PROPERTY_DOESNT_EXIST") is RecordErrorKind.VALIDATION
    assert hs.error_kind("INVALID_OPTION") is RecordErrorKind.VALIDATION


def test_saved_documents_are_recognised_and_unwrapped() -> None:
    detail = {"instance_code": "I-1", "form": "[]"}
    assert fs.looks_like_instance(detail)
    assert not fs.looks_like_instance({"properties": {}})
    assert fs.unwrap_answer({"code": 0, "msg": "success", "data": detail}) == detail
    assert fs.unwrap_answer({"code": 0, "data": {"other": 1}}) == {"code": 0, "data": {"other": 1}}
    assert fs.unwrap_answer(["x"]) == ["x"]
    assert hs.looks_like_object({"id": "1", "properties": {}})
    assert not hs.looks_like_object(detail)
    assert not hs.looks_like_object("properties")


def test_widget_and_attribute_vocabulary() -> None:
    assert fs.CHOICE_WIDGET in fs.WIDGET_TYPES
    assert set(fs.WIDGET_FIELD_TYPES) <= fs.WIDGET_TYPES
    assert {"instance_code", "updated_at", "start_time"} <= fs.INSTANCE_ATTRIBUTES


def test_delivery_signatures_are_computed_as_the_vendors_sign() -> None:
    from bridge.hooks import feishu_delivery, hubspot_delivery

    assert hubspot_delivery.normalise_uri("https://x.test/h?a=%3a%2F%20") == "https://x.test/h?a=:/%20"
    assert hubspot_delivery.signature_v3("s", "post", "https://x.test/%3A", b"[]", "1") == (
        hubspot_delivery.signature_v3("s", "POST", "https://x.test/:", b"[]", "1")
    )
    token = feishu_delivery.encrypt("k", b"{}", b"\x02" * 16)
    assert feishu_delivery.decrypt("k", token) == b"{}"
    with pytest.raises(feishu_delivery.CipherError, match="not base64"):
        feishu_delivery.decrypt("k", "***")
    assert len(feishu_delivery.signature("k", "1", "n", b"{}")) == 64
