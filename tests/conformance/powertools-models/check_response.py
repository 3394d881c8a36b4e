"""Checks the partial batch response our SDK writes against Powertools for AWS Lambda (Python)'s
own model of a Kafka partial batch response, and against the response Powertools itself writes.

What is checked (exit status 0 when all hold, 1 otherwise, each check printed):

1. Powertools 3.37.0 models a Kafka partial failure response in
   `aws_lambda_powertools/utilities/batch/types.py`: `PartialItemFailureResponse` (TypedDict,
   `batchItemFailures: list[PartialItemFailures]`), `PartialItemFailures` (`itemIdentifier:
   str | KafkaItemIdentifier`) and `KafkaItemIdentifier` (`partition: str`, `offset: int`).
   TypedDicts do not validate at run time, so the response is validated against them with
   pydantic's `TypeAdapter` in strict mode (pydantic is Powertools' own validation engine, its
   `parser` extra; pydantic reads the `typing.TypedDict`s Powertools declares on Python 3.12+
   only), and every identifier also against `KafkaItemIdentifier` alone, with exactly its keys
   (pydantic ignores extra TypedDict keys; AWS fails the batch on a wrong key name).
2. Powertools' `BatchProcessor(EventType.Kafka)` + `process_partial_response`, given an event
   whose record `orders-0@5` fails, answers with a response equal to ours, and `json.dumps` of it
   with compact separators is our file byte for byte.
3. The check can fail: responses that are not Powertools' model (offset as a string, the old
   `topic-partition` key, an identifier string) are refused by step 1.

Usage, from the repository root (the golden file is written and checked by
events/tests/aws_fixtures.rs, `our_response_is_the_golden_file`):

    venv=~/.cache/kafka-lambda/conformance/powertools-models/venv-py312-powertools-3.37.0
    python3.12 -m venv "$venv"
    "$venv/bin/pip" install 'aws-lambda-powertools[parser]==3.37.0'
    "$venv/bin/python" \
        tests/conformance/powertools-models/check_response.py [events/fixtures/aws/our-partial-response.json]
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

EXPECTED_POWERTOOLS = "3.37.0"
DEFAULT_RESPONSE = Path(__file__).resolve().parents[3] / "events/fixtures/aws/our-partial-response.json"

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def validate(document: object) -> None:
    """Raises unless `document` is a Powertools Kafka partial batch response."""
    from pydantic import TypeAdapter

    from aws_lambda_powertools.utilities.batch.types import KafkaItemIdentifier, PartialItemFailureResponse

    TypeAdapter(PartialItemFailureResponse).validate_python(document, strict=True)
    kafka_keys = KafkaItemIdentifier.__required_keys__ | KafkaItemIdentifier.__optional_keys__
    for failure in document["batchItemFailures"]:  # type: ignore[index]
        identifier = failure["itemIdentifier"]
        TypeAdapter(KafkaItemIdentifier).validate_python(identifier, strict=True)
        if set(identifier) != kafka_keys:
            raise ValueError(f"itemIdentifier keys {sorted(identifier)} are not {sorted(kafka_keys)}")


def powertools_response() -> dict:
    """What Powertools answers when record orders-0@5 of a three-record batch fails."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record(offset: int) -> dict:
        return {
            "topic": "orders",
            "partition": 0,
            "offset": offset,
            "timestamp": 1700000000000 + offset,
            "timestampType": "CREATE_TIME",
            "key": None,
            "value": "eyJpZCI6NDJ9",
            "headers": [],
        }

    event = {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "b-1:9092",
        "records": {"orders-0": [record(4), record(5), record(6)]},
    }

    def handler(record) -> None:  # Powertools passes the record as `record=`
        if record.offset == 5:
            raise RuntimeError("poison")

    return process_partial_response(event=event, record_handler=handler, processor=BatchProcessor(EventType.Kafka))


def main() -> int:
    if sys.version_info < (3, 12):
        print("FAIL needs Python 3.12+: pydantic cannot read typing.TypedDict before it", file=sys.stderr)
        return 2
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RESPONSE
    raw = path.read_bytes()
    ours = json.loads(raw)
    installed = version("aws-lambda-powertools")
    check("aws-lambda-powertools version", installed == EXPECTED_POWERTOOLS, installed)

    try:
        validate(ours)
        check("our response is a PartialItemFailureResponse with KafkaItemIdentifier items", True, raw.decode())
    except Exception as error:  # noqa: BLE001 - any refusal is the finding
        check("our response is a PartialItemFailureResponse with KafkaItemIdentifier items", False, str(error))

    theirs = powertools_response()
    check("Powertools' BatchProcessor(EventType.Kafka) answers the same", theirs == ours, json.dumps(theirs))
    compact = json.dumps(theirs, separators=(",", ":")).encode()
    check("and byte for byte (compact JSON)", compact == raw, compact.decode())

    not_powertools = {
        "offset as a string": {"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": "5"}}]},
        "topic-partition key": {
            "batchItemFailures": [{"itemIdentifier": {"topic-partition": "orders-0", "offset": 5}}]
        },
        "identifier as a string": {"batchItemFailures": [{"itemIdentifier": "orders-0-5"}]},
        "extra key": {"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 5, "x": 1}}]},
    }
    for name, document in not_powertools.items():
        try:
            validate(document)
            check(f"the model refuses a response with {name}", False, "accepted")
        except Exception:  # noqa: BLE001
            check(f"the model refuses a response with {name}", True)

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
