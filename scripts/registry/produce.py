"""Produces schema-registry-framed records to Kafka for kafka-lambda's tests.

Run it with the registry venv's python (scripts/registry.sh env: KL_REGISTRY_PYTHON):

    "$KL_REGISTRY_PYTHON" scripts/registry/produce.py SPEC.json     # or the spec on stdin

The spec is one JSON object:

    {
      "bootstrap": "127.0.0.1:19092",        default $KAFKA_BOOTSTRAP_SERVERS
      "topic": "orders",                     required
      "registry": "confluent",               "confluent" (default) or "glue"
      "format": "avro",                      "avro", "protobuf" or "jsonschema"
      "schema": "...",                       the value schema: Avro JSON text, .proto text or
                                             JSON Schema text (a JSON object is taken too)
      "message": "shop.Order.Line",          protobuf: the message to produce, full or short
                                             name (default: the file's first message)
      "imports": {"common.proto": "..."},    protobuf: other .proto files the schema imports;
                                             the serializer registers each as a reference
      "references": [                        avro/jsonschema: schemas registered first, under
        {"name": "t.Addr", "subject": "addr",  their subject, and named as references of the
         "schema": "..."}                      value schema, which the serializer registers
      ],                                       with them
      "records": [
        {"key": "k1", "value": {...},        value null: a tombstone; key null: no key
         "partition": 0,                     optional
         "headers": {"h": "v"}}              or [["h", "v"], ...]; values are strings
      ],
      "registry_url": "http://…/apis/ccompat/v7", default $KL_SCHEMA_REGISTRY_URL
      "subject_name_strategy": "topic",      "topic" (default), "record" or "topic_record"
      "key_subject_name_strategy": "topic",  the same for the key (default topic)
      "auto_register": true,                 confluent serializers' auto.register.schemas
      "use_latest_version": false,           confluent serializers' use.latest.version
      "normalize": false,                    confluent serializers' normalize.schemas
      "key_format": "string",                "string" (default: UTF-8, not framed), "avro",
      "key_schema": "...",                   "protobuf" or "jsonschema" (with key_schema,
      "key_message": "...",                  key_message and key_imports as for the value)
      "key_imports": {...},                  (and key_references)
      "glue": {                              registry "glue" only:
        "endpoint": "http://127.0.0.1:18082",  default $KL_GLUE_ENDPOINT
        "region": "us-east-1",
        "registry_name": "kl-test",          created when missing
        "schema_name": "<topic>",            created when missing, else a new version
        "compression": "none"                "none" (byte 0) or "zlib" (byte 5)
      }
    }

Confluent framing is the serializers' own: magic byte 0, the 4-byte big-endian schema id the
registry returned, for Protobuf the message indexes (zigzag varints, [0] written as one 0
byte), then the payload. Glue records, every format, are written whole by AWS's own Java
serializer (GlueSchemaRegistryKafkaSerializer, run as scripts/registry/glue-serde's
GlueSerialize; scripts/registry.sh installs it, KL_GLUE_SERDE_HOME), which also registers the
schema (auto-registration): header version byte 3, compression byte (0 none, 5 zlib), the
16-byte schema version UUID, then the payload, zlib-compressed when asked: Avro binary (the
value read into a GenericRecord by Avro's JSON decoder, after fastavro has put it in Avro's
JSON encoding), the JSON document (JsonDataWithSchema, validated against the schema), or Glue's
message index and the Protobuf message. Glue keys are plain strings.

It prints one JSON object: for each record its partition, offset, key and value schema ids
(Confluent) and the first bytes of the value in hex; the distinct value schema ids; for Glue the
schema version id (of the first value that is not null; null when there is none).
"""

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import uuid

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

# The file name the schema gets in its FileDescriptorProto (and so in the registry).
MAIN_PROTO = "schema.proto"

STRATEGIES = {
    "topic": "topic_subject_name_strategy",
    "record": "record_subject_name_strategy",
    "topic_record": "topic_record_subject_name_strategy",
}


def fail(message):
    print(f"produce.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def schema_text(schema):
    return schema if isinstance(schema, str) else json.dumps(schema)


# ---------------------------------------------------------------------------------------------
# Protobuf: a message class from .proto text, at run time


def compile_proto(work, text, imports, grpc_tools, descriptor_pb2):
    """protoc's FileDescriptorSet of the schema, imported files first, compiled in work."""
    for name, body in {**(imports or {}), MAIN_PROTO: text}.items():
        path = os.path.join(work, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write(body)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    out = os.path.join(work, "set.pb")
    # protoc in its own process: grpc_tools.protoc.main keeps state between calls.
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{work}", f"-I{well_known}",
         "--include_imports", f"--descriptor_set_out={out}", MAIN_PROTO],
        capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"protoc rejected the schema:\n{result.stderr}")
    files = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as file:
        files.ParseFromString(file.read())
    return files


def qualified(package, message):
    """The full name of `message` (full or short) of a file in `package`."""
    if package and not message.startswith(package + "."):
        return f"{package}.{message}"
    return message


def proto_message_class(text, message, imports):
    """Compiles the .proto text (and the files it imports) with grpcio-tools' protoc into a
    descriptor set, loads it into a fresh descriptor pool and returns the message class."""
    import grpc_tools
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    with tempfile.TemporaryDirectory(prefix="kl-proto-") as work:
        files = compile_proto(work, text, imports, grpc_tools, descriptor_pb2)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:  # dependencies first: protoc writes them in that order
        pool.Add(proto)
    schema_file = pool.FindFileByName(MAIN_PROTO)
    if message:
        try:
            descriptor = pool.FindMessageTypeByName(qualified(schema_file.package, message))
        except KeyError:
            try:
                descriptor = pool.FindMessageTypeByName(message)
            except KeyError:
                fail(f"the .proto schema has no message {message!r}")
    else:
        descriptor = next(iter(schema_file.message_types_by_name.values()), None)
        if descriptor is None:
            fail("the .proto schema declares no message")
    return message_factory.GetMessageClass(descriptor)


# ---------------------------------------------------------------------------------------------
# Confluent serializers


def register_references(client, references, schema_type):
    from confluent_kafka.schema_registry import Schema, SchemaReference

    result = []
    for ref in references or []:
        ref_schema = Schema(schema_text(ref["schema"]), ref.get("schema_type", schema_type))
        client.register_schema(ref["subject"], ref_schema)
        version = client.lookup_schema(ref["subject"], ref_schema).version
        result.append(SchemaReference(ref["name"], ref["subject"], version))
    return result


def confluent_serializer(spec, client, fmt, schema, message, imports, references, strategy):
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka import schema_registry

    conf = {
        "auto.register.schemas": spec.get("auto_register", True),
        "use.latest.version": spec.get("use_latest_version", False),
        "normalize.schemas": spec.get("normalize", False),
    }
    if strategy not in STRATEGIES:
        fail(f"subject_name_strategy must be one of {sorted(STRATEGIES)}")
    conf["subject.name.strategy"] = getattr(schema_registry, STRATEGIES[strategy])
    schema_type = {"avro": "AVRO", "jsonschema": "JSON", "protobuf": "PROTOBUF"}.get(fmt)
    if schema_type is None:
        fail(f"format must be avro, protobuf or jsonschema, not {fmt!r}")

    text = schema_text(schema)
    if references and fmt == "protobuf":
        fail("protobuf takes its references as imports, not references")
    if references:
        # The referenced schemas are registered here; the serializer registers (or looks up)
        # the value schema with the references, and resolves them to parse it.
        text = Schema(text, schema_type, register_references(client, references, schema_type))
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer

        return AvroSerializer(client, text, conf=conf), None
    if fmt == "jsonschema":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer

        return JSONSerializer(text, client, conf=conf), None
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    conf["use.deprecated.format"] = False
    cls = proto_message_class(text, message, imports)
    return ProtobufSerializer(cls, client, conf=conf), cls


def make_value(cls, value):
    if cls is None or value is None:
        return value
    from google.protobuf import json_format

    return json_format.ParseDict(value, cls())


# ---------------------------------------------------------------------------------------------
# Glue


def glue_serializer(spec):
    """The value serializer of registry glue: every value as AWS's own Glue serializer wrote it
    (glue_values), handed out in record order. Returns it and the schema version id."""
    import boto3

    glue = spec.get("glue", {})
    fmt = spec["format"]
    data_format = {"avro": "AVRO", "jsonschema": "JSON", "protobuf": "PROTOBUF"}.get(fmt)
    if data_format is None:
        fail("registry glue supports format avro, jsonschema and protobuf")
    endpoint = glue.get("endpoint") or os.environ.get("KL_GLUE_ENDPOINT")
    if not endpoint:
        fail("no Glue endpoint: set glue.endpoint or KL_GLUE_ENDPOINT (scripts/registry.sh env)")
    region = glue.get("region", "us-east-1")
    registry = glue.get("registry_name", "kl-test")
    compression = glue.get("compression", "none")
    if compression not in ("none", "zlib"):
        fail("glue.compression must be none or zlib")
    # The serializer registers schemas, not registries: the registry is made here. It is looked
    # up first: moto checks its limit of 10 registries before the name, so CreateRegistry of
    # one that exists fails at the limit instead of answering AlreadyExistsException.
    client = boto3.client(
        "glue", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    try:
        client.get_registry(RegistryId={"RegistryName": registry})
    except client.exceptions.EntityNotFoundException:
        try:
            client.create_registry(RegistryName=registry)
        except client.exceptions.AlreadyExistsException:
            pass
        except client.exceptions.ResourceNumberLimitExceededException:
            fail(f"cannot create the Glue registry {registry!r}: the registry keeps no more "
                 "(moto keeps at most 10 until it restarts: scripts/registry.sh stop, start)")
    job = {"data_format": data_format, "endpoint": endpoint, "region": region,
           "registry_name": registry, "schema_name": glue.get("schema_name", spec["topic"]),
           "compression": compression, "topic": spec["topic"]}
    values = glue_values(spec, job)
    first = next((data for data in values if data is not None), None)
    version_id = str(uuid.UUID(bytes=first[2:18])) if first else None
    written = iter(values)

    def serialize_written(value, _ctx):
        data = next(written)
        if (value is None) != (data is None):
            fail("AWS's Glue serializer answered out of step with the records")
        return data

    return serialize_written, version_id


def glue_serde_home():
    """Where scripts/registry.sh installed AWS's Glue serializer: KL_GLUE_SERDE_HOME, else the
    glue-serde folder beside the venv this script runs in (both are in its cache)."""
    home = os.environ.get("KL_GLUE_SERDE_HOME") or os.path.join(
        os.path.dirname(sys.prefix), "glue-serde")
    if not os.path.exists(os.path.join(home, ".complete")):
        fail(f"AWS's Glue serializer is not installed in {home}: run scripts/registry.sh install "
             "and set KL_GLUE_SERDE_HOME (scripts/registry.sh env)")
    return home


def avro_json_encoding(schema, value):
    """`value` (a plain datum, as confluent's AvroSerializer takes it) in Avro's JSON encoding
    (unions as {"branch": value}, defaults filled in), which Avro's JsonDecoder reads: fastavro
    only translates the spec here; the Avro binary is Avro's Java writer's, in the serializer."""
    import fastavro
    import fastavro.validation

    out = io.StringIO()
    try:
        fastavro.json_writer(out, schema, [value], validator=True)
    except (fastavro.validation.ValidationError, ValueError, TypeError) as error:
        fail(f"the value does not fit the Avro schema: {error}")
    return json.loads(out.getvalue())


def glue_values(spec, job):
    """The records' values as AWS's own Glue serializer writes them (GlueSerialize.java, which
    scripts/registry.sh installs), registering the schema itself: header version byte 3, the
    compression byte, the schema version id, then the payload (for Protobuf Glue's message
    index and the message). None for a null value."""
    home = glue_serde_home()
    with open(os.path.join(home, "classpath")) as file:
        classpath = os.path.join(home, "classes") + os.pathsep + file.read().strip()
    values = [record.get("value") for record in spec.get("records", [])]
    with tempfile.TemporaryDirectory(prefix="kl-glue-") as work:
        if job["data_format"] == "PROTOBUF":
            import grpc_tools
            from google.protobuf import descriptor_pb2

            files = compile_proto(work, schema_text(spec["schema"]), spec.get("imports"),
                                  grpc_tools, descriptor_pb2)
            main_file = next(f for f in files.file if f.name == MAIN_PROTO)
            job["descriptor_set"] = os.path.join(work, "set.pb")
            job["message"] = qualified(main_file.package,
                                       spec.get("message") or main_file.message_type[0].name)
        elif job["data_format"] == "AVRO":
            import fastavro

            job["schema"] = schema_text(spec["schema"])
            try:
                parsed = fastavro.parse_schema(json.loads(job["schema"]))
            except (ValueError, fastavro.schema.SchemaParseException) as error:
                fail(f"the Avro schema does not parse: {error}")
            values = [None if v is None else avro_json_encoding(parsed, v) for v in values]
        else:
            job["schema"] = schema_text(spec["schema"])
        job["values"] = values
        result = subprocess.run(
            [os.environ.get("KL_REGISTRY_JAVA", "java"), "-cp", classpath, "GlueSerialize"],
            input=json.dumps(job), capture_output=True, text=True,
            env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 **os.environ})
    if result.returncode != 0:
        fail(f"AWS's Glue serializer failed:\n{result.stderr[-4000:]}")
    lines = result.stdout.splitlines()
    if len(lines) != len(values):
        fail(f"AWS's Glue serializer wrote {len(lines)} values for {len(values)} records")
    return [base64.b64decode(line) if line else None for line in lines]


# ---------------------------------------------------------------------------------------------


def confluent_prefix(data):
    """The schema id of a Confluent-framed payload, or None."""
    if data is None or len(data) < 5 or data[0] != 0:
        return None
    return int.from_bytes(data[1:5], "big")


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help")):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    if len(sys.argv) == 2 and sys.argv[1] != "-":
        with open(sys.argv[1]) as file:
            spec = json.load(file)
    else:
        spec = json.load(sys.stdin)
    for required in ("topic", "format", "schema"):
        if required not in spec:
            fail(f"the spec has no {required!r}")
    topic = spec["topic"]
    bootstrap = spec.get("bootstrap") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        fail("no bootstrap: set it in the spec or KAFKA_BOOTSTRAP_SERVERS (scripts/services.sh env)")
    registry = spec.get("registry", "confluent")
    output = {"topic": topic, "records": []}

    key_serializer, key_cls = StringSerializer("utf_8"), None
    if registry == "confluent":
        from confluent_kafka.schema_registry import SchemaRegistryClient

        url = spec.get("registry_url") or os.environ.get("KL_SCHEMA_REGISTRY_URL")
        if not url:
            fail("no registry_url: set it in the spec or KL_SCHEMA_REGISTRY_URL (scripts/registry.sh env)")
        client = SchemaRegistryClient({"url": url})
        value_serializer, value_cls = confluent_serializer(
            spec, client, spec["format"], spec["schema"], spec.get("message"),
            spec.get("imports"), spec.get("references"), spec.get("subject_name_strategy", "topic"))
        key_format = spec.get("key_format", "string")
        if key_format != "string":
            if "key_schema" not in spec:
                fail("key_format other than string needs key_schema")
            key_serializer, key_cls = confluent_serializer(
                spec, client, key_format, spec["key_schema"], spec.get("key_message"),
                spec.get("key_imports"), spec.get("key_references"),
                spec.get("key_subject_name_strategy", "topic"))
    elif registry == "glue":
        value_serializer, output["schema_version_id"] = glue_serializer(spec)
        value_cls = None
    else:
        fail(f"registry must be confluent or glue, not {registry!r}")

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    delivered = {}

    def on_delivery(index):
        def callback(error, message):
            delivered[index] = (error, message)
        return callback

    for index, record in enumerate(spec.get("records", [])):
        value = record.get("value")
        key = record.get("key")
        value_bytes = value_serializer(make_value(value_cls, value),
                                       SerializationContext(topic, MessageField.VALUE))
        key_bytes = None if key is None else key_serializer(
            make_value(key_cls, key), SerializationContext(topic, MessageField.KEY))
        headers = record.get("headers") or {}
        headers = list(headers.items()) if isinstance(headers, dict) else [tuple(h) for h in headers]
        kwargs = {"partition": record["partition"]} if "partition" in record else {}
        producer.produce(topic, value=value_bytes, key=key_bytes, headers=headers or None,
                         on_delivery=on_delivery(index), **kwargs)
        entry = {"value_hex": None if value_bytes is None else value_bytes[:32].hex()}
        if registry == "confluent":
            entry["value_schema_id"] = confluent_prefix(value_bytes)
            if key_cls is not None or spec.get("key_format", "string") != "string":
                entry["key_schema_id"] = confluent_prefix(key_bytes)
        output["records"].append(entry)
        producer.poll(0)
    left = producer.flush(30)
    if left:
        fail(f"{left} record(s) were not delivered within 30 s")
    for index, entry in enumerate(output["records"]):
        error, message = delivered.get(index, (None, None))
        if error is not None or message is None:
            fail(f"record {index} was not delivered: {error}")
        entry["partition"] = message.partition()
        entry["offset"] = message.offset()
    if registry == "confluent":
        output["value_schema_ids"] = sorted(
            {e["value_schema_id"] for e in output["records"] if e["value_schema_id"] is not None})
    json.dump(output, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    try:
        main()
    except KafkaException as error:
        fail(f"Kafka: {error}")
    except SchemaRegistryError as error:
        fail(f"schema registry: {error}")
