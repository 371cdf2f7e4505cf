from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7
from shared.events import EVENT_CLASSES, Event
from shared.events.asyncapi import ASYNCAPI_FILE, DEAD_LETTER, DLT_HEADERS, main, message_id, render
from shared.events.codec import Header
from shared.events.topics import DLT_SUFFIX, EVENT_TOPICS, TOPIC_SPECS

DOCUMENT_URI = "urn:asyncapi"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI_FILE.read_text())


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _validator(document: dict[str, Any], pointer: str) -> Draft7Validator:
    # AsyncAPI 3.0 schemas are a superset of JSON Schema draft 7; refs resolve against the document.
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT7.create_resource(document))
    return Draft7Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry)


def test_the_committed_document_equals_a_fresh_generation() -> None:
    assert ASYNCAPI_FILE.read_text() == render(), "run `python -m shared.events.asyncapi`"
    assert main(["--check"]) == 0


def test_generation_is_deterministic() -> None:
    assert render() == render()


def test_the_check_fails_when_the_document_is_stale(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(render().replace("partitions: 12", "partitions: 6"))

    assert main(["--check", "--file", str(stale)]) == 1
    assert main(["--file", str(stale)]) == 0
    assert main(["--check", "--file", str(stale)]) == 0


def test_it_is_an_asyncapi_3_document_whose_references_all_resolve(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(document["info"])
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)  # raises KeyError when dangling


def test_every_topic_and_its_dead_letter_topic_is_a_channel_with_its_provisioned_settings(
    document: dict[str, Any],
) -> None:
    channels = document["channels"]
    assert set(channels) == {spec.name for spec in TOPIC_SPECS}
    for spec in TOPIC_SPECS:
        channel = channels[spec.name]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == kafka["topic"] == spec.name
        assert kafka["partitions"] == spec.partitions
        assert kafka["replicas"] == spec.replication_factor
        assert kafka["topicConfiguration"]["retention.ms"] == int(spec.config["retention.ms"])


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=message_id)
def test_every_event_is_a_message_of_its_topic_sent_by_exactly_one_service(
    document: dict[str, Any], cls: type[Event]
) -> None:
    channel_ref = f"#/channels/{cls.topic}/messages/{message_id(cls)}"
    assert message_id(cls) in document["channels"][cls.topic]["messages"]
    senders = [
        name
        for name, operation in document["operations"].items()
        if operation["action"] == "send" and {"$ref": channel_ref} in operation["messages"]
    ]
    assert len(senders) == 1


def test_every_operation_sends_only_messages_of_its_own_channel(document: dict[str, Any]) -> None:
    for operation in document["operations"].values():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel_ref}/messages/")
    assert {op["channel"]["$ref"] for op in document["operations"].values()} == {
        f"#/channels/{topic}" for topic in EVENT_TOPICS
    }


def test_dead_letter_channels_carry_the_spring_kafka_dead_letter_headers(document: dict[str, Any]) -> None:
    spring_headers = {
        "kafka_dlt-original-topic",
        "kafka_dlt-original-partition",
        "kafka_dlt-original-offset",
        "kafka_dlt-original-timestamp",
        "kafka_dlt-original-consumer-group",
        "kafka_dlt-exception-fqcn",
        "kafka_dlt-exception-message",
        "kafka_dlt-exception-stacktrace",
    }
    headers = document["components"]["schemas"]["DeadLetterHeaders"]
    assert set(headers["required"]) == set(DLT_HEADERS) >= spring_headers
    for name, channel in document["channels"].items():
        assert (DEAD_LETTER in channel["messages"]) == name.endswith(DLT_SUFFIX)


def test_the_event_headers_schema_describes_every_header_the_codec_writes(document: dict[str, Any]) -> None:
    properties = document["components"]["schemas"]["EventHeaders"]["properties"]

    assert set(properties) == {header.value for header in Header}
    assert all(schema["description"] for schema in properties.values())


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=message_id)
def test_every_message_example_validates_against_its_header_and_payload_schemas(
    document: dict[str, Any], cls: type[Event]
) -> None:
    pointer = f"/components/messages/{message_id(cls)}"
    message = _resolve(document, f"#{pointer}")
    (example,) = message["examples"]

    _validator(document, f"{pointer}/headers").validate(example["headers"])
    _validator(document, f"{pointer}/payload").validate(example["payload"])
    assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_the_documented_dead_letter_headers_are_the_ones_the_consumer_writes() -> None:
    dead_letter = pytest.importorskip("shared.consumer.dead_letter")
    written = {
        value for value in vars(dead_letter).values() if isinstance(value, str) and value.startswith("kafka_dlt-")
    }

    assert written == set(DLT_HEADERS)
