"""The pure parts of the machinery, without Kafka or Postgres: dead-letter headers in Spring Kafka's
binary formats, retry backoff and classification, the relay's lock key, producer and consumer
settings and their environment overrides."""

import struct
import zlib

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from shared.consumer.dead_letter import (
    EXCEPTION_FQCN,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    MAX_STACKTRACE_BYTES,
    ORIGINAL_CONSUMER_GROUP,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TIMESTAMP_TYPE,
    ORIGINAL_TOPIC,
    dead_letter_for,
    exception_fqcn,
    read_dlt_headers,
)
from shared.consumer.offsets import PendingOffsets
from shared.consumer.retry import NonRetryableError, backoff_seconds
from shared.events import Envelope, OrderCancelled
from shared.events.codec import InvalidHeader, decode, encode
from shared.outage import is_database_outage
from shared.outbox.relay import advisory_lock_key
from shared.settings import ServiceSettings

ORIGINAL_HEADERS = [("eventId", b"3f1c2a9e-0000-4000-8000-000000000001"), ("eventType", b"OrderCancelled")]


def _record(**overrides: object) -> ConsumerRecord:
    fields: dict[str, object] = {
        "topic": "order-events",
        "partition": 7,
        "offset": 2**40 + 5,
        "timestamp": 1_764_000_000_123,
        "timestamp_type": 0,
        "key": b"order-1",
        "value": b"\x00\xffnot json",
        "checksum": None,
        "serialized_key_size": 7,
        "serialized_value_size": 10,
        "headers": ORIGINAL_HEADERS,
    }
    fields.update(overrides)
    return ConsumerRecord(**fields)  # type: ignore[arg-type]


class PaymentGatewayDown(Exception):
    pass


def _raised(exc: BaseException) -> BaseException:
    """`exc` with a traceback, as the worker has it when it dead-letters."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# --- Dead letters -------------------------------------------------------------------------------


def test_a_dead_letter_goes_to_the_dlt_partition_of_the_same_number_with_the_original_key_value_and_headers():
    letter = dead_letter_for(_record(), _raised(PaymentGatewayDown("502")), "payment-service")

    assert letter.topic == "order-events.DLT"
    assert letter.partition == 7
    assert (letter.key, letter.value) == (b"order-1", b"\x00\xffnot json")
    assert letter.headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS


def test_dead_letter_headers_use_spring_kafkas_names_and_binary_formats():
    letter = dead_letter_for(_record(), _raised(PaymentGatewayDown("gateway said 502")), "payment-service")
    added = dict(letter.headers[len(ORIGINAL_HEADERS) :])

    assert added[ORIGINAL_TOPIC] == b"order-events"
    assert added[ORIGINAL_PARTITION] == b"\x00\x00\x00\x07"  # Java int, big-endian
    assert added[ORIGINAL_OFFSET] == struct.pack(">q", 2**40 + 5) == b"\x00\x00\x01\x00\x00\x00\x00\x05"  # Java long
    assert added[ORIGINAL_TIMESTAMP] == (1_764_000_000_123).to_bytes(8, "big")
    assert added[ORIGINAL_TIMESTAMP_TYPE] == b"CreateTime"
    assert added[ORIGINAL_CONSUMER_GROUP] == b"payment-service"
    assert added[EXCEPTION_FQCN] == b"test_machinery_units.PaymentGatewayDown"
    assert added[EXCEPTION_MESSAGE] == b"gateway said 502"
    stacktrace = added[EXCEPTION_STACKTRACE].decode()
    assert stacktrace.startswith("Traceback (most recent call last)")
    assert stacktrace.rstrip().endswith("PaymentGatewayDown: gateway said 502")


def test_a_log_append_time_is_named_as_spring_names_it():
    letter = dead_letter_for(_record(timestamp_type=1), _raised(ValueError("x")), "g")

    assert dict(letter.headers)[ORIGINAL_TIMESTAMP_TYPE] == b"LogAppendTime"


def test_dead_letter_headers_read_back_as_what_they_say():
    letter = dead_letter_for(_record(), _raised(NonRetryableError("no such order")), "order-service")

    assert read_dlt_headers(letter.headers) == {
        ORIGINAL_TOPIC: "order-events",
        ORIGINAL_PARTITION: 7,
        ORIGINAL_OFFSET: 2**40 + 5,
        ORIGINAL_TIMESTAMP: 1_764_000_000_123,
        ORIGINAL_TIMESTAMP_TYPE: "CreateTime",
        ORIGINAL_CONSUMER_GROUP: "order-service",
        EXCEPTION_FQCN: "shared.consumer.retry.NonRetryableError",
        EXCEPTION_MESSAGE: "no such order",
        EXCEPTION_STACKTRACE: read_dlt_headers(letter.headers)[EXCEPTION_STACKTRACE],
    }


def test_a_tombstone_without_headers_is_dead_lettered_with_only_the_spring_headers():
    letter = dead_letter_for(_record(value=None, key=None, headers=()), _raised(ValueError("tombstone")), "g")

    assert (letter.key, letter.value) == (None, None)
    assert letter.headers[0][0] == ORIGINAL_TOPIC


def test_a_long_exception_message_and_stacktrace_are_cut_to_their_limits_on_character_boundaries():
    # Two bytes per "é" after one "x": both byte limits fall in the middle of a character.
    message = "x" + "é" * 9000
    letter = dead_letter_for(_record(), _raised(PaymentGatewayDown(message)), "g")
    headers = dict(letter.headers)

    assert headers[EXCEPTION_MESSAGE].decode() == "x" + "é" * 2047
    stacktrace = headers[EXCEPTION_STACKTRACE]
    assert MAX_STACKTRACE_BYTES - 1 <= len(stacktrace) <= MAX_STACKTRACE_BYTES
    assert stacktrace.decode() == "é" * ((len(stacktrace) - 1) // 2) + "\n"


def test_an_exception_message_that_is_not_valid_unicode_still_makes_a_dead_letter():
    letter = dead_letter_for(_record(), _raised(ValueError("bad byte \udcff here")), "g")

    assert dict(letter.headers)[EXCEPTION_MESSAGE].decode() == "bad byte \\udcff here"


def test_the_exception_class_is_named_with_its_module():
    assert exception_fqcn(InvalidHeader("eventId", "is empty")) == "shared.events.codec.InvalidHeader"
    assert exception_fqcn(KeyError("x")) == "builtins.KeyError"


def test_an_occurred_at_that_is_out_of_range_in_utc_is_an_invalid_header_not_a_crash():
    # A poison record must raise an InvalidRecord (dead-lettered), never an arbitrary error that
    # would stop the worker at the same record after every restart.
    record = encode(
        Envelope.new(OrderCancelled(order_id="7d0a8b0e-0000-4000-8000-000000000001", reason="customer_request"))
    )
    headers = [(n, b"0001-01-01T00:00:00+01:00" if n == "occurredAt" else v) for n, v in record.headers]

    with pytest.raises(InvalidHeader, match="occurredAt"):
        decode(record.value, headers)


# --- Retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("multiplier", "expected"),
    [(1.0, [1.0, 1.0, 1.0, 1.0]), (2.0, [1.0, 2.0, 4.0, 8.0]), (3.0, [1.0, 3.0, 9.0, 10.0])],
)
def test_the_backoff_starts_at_the_base_grows_by_the_multiplier_and_stops_at_the_cap(multiplier, expected):
    assert [backoff_seconds(n, base=1.0, multiplier=multiplier, cap=10.0) for n in (1, 2, 3, 4)] == expected


def test_the_backoff_never_goes_below_the_base_or_above_the_cap():
    assert backoff_seconds(0, base=0.5, multiplier=2, cap=10) == 0.5
    assert backoff_seconds(100, base=0.5, multiplier=2, cap=10) == 10
    assert backoff_seconds(1, base=30, multiplier=2, cap=10) == 10


def test_a_timeout_or_a_full_disk_is_not_a_database_outage_although_both_are_os_errors():
    # A payment gateway that times out must spend the record's retry budget, not wait forever.
    assert not is_database_outage(TimeoutError("gateway did not answer"))
    assert not is_database_outage(OSError(28, "No space left on device"))
    assert is_database_outage(ConnectionRefusedError(111, "Connect call failed"))


# --- Offsets pending commit ---------------------------------------------------------------------

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_pending_offsets_are_the_next_offset_after_the_last_finished_record_per_partition():
    pending = PendingOffsets()
    pending.finished(P0, 4)
    pending.finished(P0, 5)
    pending.finished(P1, 9)

    assert pending.snapshot() == {P0: 6, P1: 10}


def test_a_failed_commit_leaves_every_offset_pending_for_the_next_commit():
    pending = PendingOffsets()
    pending.finished(P0, 5)
    pending.finished(P1, 9)
    pending.snapshot()  # a commit that failed: `committed` is never called

    assert pending.snapshot() == {P0: 6, P1: 10}


def test_a_commit_clears_what_it_committed_and_keeps_what_finished_while_it_was_in_flight():
    pending = PendingOffsets()
    pending.finished(P0, 5)
    pending.finished(P1, 9)
    in_flight = pending.snapshot()
    pending.finished(P1, 10)
    pending.committed(in_flight)

    assert pending.snapshot() == {P1: 11}


def test_a_revoked_partition_is_forgotten_and_the_partitions_still_owned_stay_pending():
    pending = PendingOffsets()
    pending.finished(P0, 5)
    pending.finished(P1, 9)
    pending.forget([P1])

    assert pending.snapshot() == {P0: 6}


# --- The relay's lock ---------------------------------------------------------------------------


def test_the_relay_lock_key_of_each_service_is_pinned():
    # Relays of two releases must compete for one lock during a rolling deploy: changing how the key
    # is computed would let an old and a new relay publish at once.
    assert advisory_lock_key("orders") == 3486910734
    assert advisory_lock_key("payments") == 2172417058
    assert advisory_lock_key("inventory") == 2894001341
    assert advisory_lock_key("orders") == zlib.crc32(b"outbox-relay:orders")


def test_the_relay_lock_keys_of_the_services_differ_and_fit_a_postgres_bigint():
    keys = [advisory_lock_key(schema) for schema in ("orders", "payments", "inventory")]

    assert len(set(keys)) == 3
    assert all(0 <= key < 2**63 for key in keys)


# --- Settings -----------------------------------------------------------------------------------


def _settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "service_name": "order",
        "database_url": "postgresql+asyncpg://order_svc:order_svc@127.0.0.1:5433/ecommerce",
        "db_schema": "orders",
        "http_port": 8001,
        "relay_metrics_port": 9101,
        "worker_metrics_port": 9201,
    }
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


def test_the_producer_is_durable_ordered_and_lingers_50_ms_to_batch():
    config = _settings().producer_config()

    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    assert config["compression_type"] == "lz4"
    assert config["linger_ms"] == 50
    assert config["max_batch_size"] == 32 * 1024
    assert config["client_id"] == "order-producer"


def test_producer_settings_can_be_overridden():
    config = _settings(
        producer_acks="1", producer_compression_type="none", producer_linger_ms=5, producer_max_batch_size=65536
    ).producer_config()

    assert (config["acks"], config["compression_type"], config["linger_ms"], config["max_batch_size"]) == (
        1,
        None,
        5,
        65536,
    )


def test_the_consumer_fetches_by_the_clock_and_a_second_transaction_opens_only_beside_a_slow_one():
    settings = _settings()
    config = settings.consumer_config()

    # A mebibyte is more than the saga sends in 50 ms: the broker answers when the wait is over.
    assert (config["fetch_min_bytes"], config["fetch_max_wait_ms"]) == (1024 * 1024, 50)
    assert (settings.consumer_transactions_in_flight, settings.consumer_slow_transaction_ms) == (2, 200)


def test_the_consumer_commits_offsets_itself_and_starts_a_new_group_at_the_beginning():
    config = _settings(consumer_max_poll_records=50, consumer_fetch_min_bytes=1024).consumer_config()

    assert config["enable_auto_commit"] is False
    assert config["auto_offset_reset"] == "earliest"
    assert config["group_id"] == "order-service"
    assert (config["max_poll_records"], config["fetch_min_bytes"]) == (50, 1024)


def test_a_hand_over_grace_as_long_as_the_rebalance_timeout_is_refused():
    with pytest.raises(ValidationError, match="consumer_handoff_grace_s"):
        _settings(consumer_max_poll_interval_ms=3000, consumer_handoff_grace_s=3)


def test_a_configured_consumer_group_replaces_the_default():
    assert _settings(consumer_group="order-replay").consumer_config()["group_id"] == "order-replay"


async def test_aiokafka_accepts_the_producer_and_consumer_configuration():
    # Constructing validates the options (and that the lz4 codec is installed) without connecting.
    settings = _settings()
    AIOKafkaProducer(**settings.producer_config())
    AIOKafkaConsumer(**settings.consumer_config())


class PrefixedSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MACHINERY_TEST_", extra="ignore", frozen=True)


def test_every_setting_can_come_from_the_environment_under_the_services_prefix(monkeypatch):
    for name, value in {
        "SERVICE_NAME": "order",
        "DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/ecommerce",
        "DB_SCHEMA": "orders",
        "HTTP_PORT": "8001",
        "RELAY_METRICS_PORT": "9101",
        "WORKER_METRICS_PORT": "9201",
        "PRODUCER_LINGER_MS": "7",
        "PRODUCER_COMPRESSION_TYPE": "zstd",
        "CONSUMER_MAX_POLL_RECORDS": "42",
        "CONSUMER_RETRY_ATTEMPTS": "5",
        "RELAY_BATCH_SIZE": "250",
    }.items():
        monkeypatch.setenv(f"MACHINERY_TEST_{name}", value)
    monkeypatch.setenv("PRODUCER_LINGER_MS", "999")  # unprefixed: someone else's setting

    settings = PrefixedSettings()  # type: ignore[call-arg]

    assert settings.producer_config()["linger_ms"] == 7
    assert settings.producer_config()["compression_type"] == "zstd"
    assert settings.consumer_config()["max_poll_records"] == 42
    assert (settings.consumer_retry_attempts, settings.relay_batch_size, settings.http_port) == (5, 250, 8001)


def test_an_unknown_compression_type_is_refused():
    with pytest.raises(ValidationError):
        _settings(producer_compression_type="brotli")


def test_production_refuses_the_development_database_password():
    with pytest.raises(ValidationError, match="development password"):
        _settings(environment="production")
    assert (
        _settings(
            environment="production",
            database_url="postgresql+asyncpg://order_svc:s3cret@db:5432/ecommerce",
            db_ssl="verify-full",
            kafka_password="an0ther-s3cret",
        ).environment
        == "production"
    )


@pytest.mark.parametrize("ssl", ["disable", "prefer"])
def test_production_refuses_a_database_connection_that_may_go_without_tls(ssl):
    with pytest.raises(ValidationError, match="db_ssl"):
        _settings(
            environment="production", database_url="postgresql+asyncpg://order_svc:s3cret@db/ecommerce", db_ssl=ssl
        )
