"""Conformance function: Powertools for AWS Lambda (Python) 3.37.0 behind awslambdaric.

Per tests/conformance/README.md: decodes the event with Powertools, appends one JSON line per
record to $KL_CONFORMANCE_OUT in a single write per invocation, and fails a record with a
`kl-poison` header through Powertools' partial batch response (BatchProcessor(EventType.Kafka)
+ process_partial_response), which answers
{"batchItemFailures": [{"itemIdentifier": {"partition": "<topic>-<p>", "offset": N}}]}.

What Powertools gives, and where the line's fields come from (see LIMITS.md for the evidence):
- `kafka_consumer` parses the event into ConsumerRecords: eventSource, eventSourceArn,
  bootstrapServers come from it. Its SchemaConfig has no raw-bytes mode in 3.37 (schema types
  AVRO, PROTOBUF, JSON or none; none base64-decodes and then UTF-8-decodes to str, failing on
  non-UTF-8 bytes), so the record bytes are not taken from its ConsumerRecordRecords.
- BatchProcessor(EventType.Kafka) hands each record to the record handler as its data class
  KafkaEventRecord: topic, partition, offset, timestamp, timestamp_type; key and value bytes
  from decoded_key / decoded_value; headers from decoded_headers (a case-insensitive dict:
  names lowercased, a repeated name kept once with its last value); key/value schema metadata
  as its KafkaEventRecordSchemaMetadata models it (dataFormat, schemaId; schemaVersion is not
  modelled).
- decoded_value raises TypeError on a null value (a tombstone), so a null `value` (the data
  class's own accessor) is written as null without calling it.
- Where a library accessor raises on the event (not expected from AWS's event shape), the field
  is written as null and the exception named in an extra `libraryErrors` object, so that the
  record is not failed for the library's sake.

With raise_on_entire_batch_failure left at its default (True), a batch whose records all fail
(a batch of poison records only) raises BatchProcessingError: the whole invocation fails.
"""

from __future__ import annotations

import base64
import json
import os

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.kafka import ConsumerRecords, kafka_consumer

NAME = "python-powertools"
POISON = "kl-poison"

processor = BatchProcessor(event_type=EventType.Kafka)

# The current invocation's event-level fields and its lines, written once at its end.
_invocation: dict = {}
_lines: list[str] = []


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _schema(metadata) -> dict | None:
    if metadata is None:
        return None
    return {"dataFormat": metadata.data_format, "schemaId": metadata.schema_id}


def _field(errors: dict, name: str, read):
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - the library's failure is recorded, not hidden
        errors[name] = f"{type(error).__name__}: {error}"
        return None


def record_handler(record: KafkaEventRecord) -> None:
    errors: dict = {}
    headers = _field(errors, "headers", lambda: record.decoded_headers)
    line = {
        **_invocation,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestampType": record.timestamp_type,
        "key": _field(errors, "key", lambda: _b64(record.decoded_key)),
        "value": _field(errors, "value", lambda: None if record.value is None else _b64(record.decoded_value)),
        "headers": None if headers is None else [[name, _b64(data)] for name, data in headers.items()],
        "keySchemaMetadata": _field(errors, "keySchemaMetadata", lambda: _schema(record.key_schema_metadata)),
        "valueSchemaMetadata": _field(errors, "valueSchemaMetadata", lambda: _schema(record.value_schema_metadata)),
        "poison": headers is not None and POISON in headers,
    }
    if errors:
        line["libraryErrors"] = errors
    # ASCII with \u escapes: a header name that is not UTF-8 arrives as lone surrogates
    # (\udc80..\udcff), which UTF-8 cannot encode.
    _lines.append(json.dumps(line, separators=(",", ":")))
    if line["poison"]:
        raise ValueError(f"poison record {record.topic}-{record.partition}@{record.offset}")


@kafka_consumer
def handler(event: ConsumerRecords, context):
    _invocation.clear()
    _invocation.update(
        function=NAME,
        invocation=context.aws_request_id,
        eventSource=event.event_source,
        eventSourceArn=event.event_source_arn,
        bootstrapServers=event.bootstrap_servers,
    )
    _lines.clear()
    try:
        return process_partial_response(
            event=event.raw_event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        if _lines:
            fd = os.open(os.environ["KL_CONFORMANCE_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                data = ("\n".join(_lines) + "\n").encode("utf-8")
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write to KL_CONFORMANCE_OUT: {written} of {len(data)} bytes")
            finally:
                os.close(fd)
