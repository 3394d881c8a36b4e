// Serializes records with AWS's own Glue Schema Registry serializer
// (software.amazon.glue:schema-registry-serde's GlueSchemaRegistryKafkaSerializer), which
// registers the schema itself (auto-registration) and writes Glue's framing: header version
// byte 3, compression byte (0 none, 5 zlib), the 16-byte schema version id, then the payload
// (for Protobuf with Glue's message index first): the bytes kafka-lambda must read, written by
// code that is not kafka-lambda's. scripts/registry/produce.py runs it for `"registry": "glue"`,
// every format.
//
// Reads one JSON object on stdin:
//   {"data_format": "AVRO" | "JSON" | "PROTOBUF",
//    "endpoint": "http://127.0.0.1:18082", "region": "us-east-1", "registry_name": "kl-test",
//    "schema_name": "orders", "compression": "none" | "zlib", "topic": "orders",
//    "schema": "...",                AVRO and JSON: the schema's text (Avro JSON, JSON Schema)
//    "descriptor_set": "/tmp/set.pb", PROTOBUF: protoc --include_imports's output
//    "message": "shop.Order.Line",   PROTOBUF: the message's full name
//    "values": [{...}, null, ...]}
// The values are: AVRO, a datum in Avro's JSON encoding (unions as {"branch": value}), read
// into a GenericRecord (or any generic datum) by Avro's JsonDecoder against the schema; JSON,
// the JSON document itself, given to the serializer as JsonDataWithSchema (which validates it
// against the schema); PROTOBUF, the message in proto3 JSON, parsed into a DynamicMessage.
// Prints one line per value: the serialized bytes in base64, or an empty line for null.

import com.amazonaws.services.schemaregistry.serializers.GlueSchemaRegistryKafkaSerializer;
import com.amazonaws.services.schemaregistry.serializers.json.JsonDataWithSchema;
import com.amazonaws.services.schemaregistry.utils.AWSSchemaRegistryConstants;
import com.amazonaws.services.schemaregistry.utils.ProtobufMessageType;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.util.JsonFormat;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.DecoderFactory;

public class GlueSerialize {
    /** A record's value, from its JSON in the spec, as the serializer takes it. */
    private interface Datum {
        Object of(JsonElement value) throws Exception;
    }

    public static void main(String[] args) throws Exception {
        JsonObject spec = JsonParser
                .parseReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                .getAsJsonObject();
        String format = spec.get("data_format").getAsString();

        Map<String, Object> config = new HashMap<>();
        config.put(AWSSchemaRegistryConstants.AWS_ENDPOINT, spec.get("endpoint").getAsString());
        config.put(AWSSchemaRegistryConstants.AWS_REGION, spec.get("region").getAsString());
        config.put(AWSSchemaRegistryConstants.REGISTRY_NAME, spec.get("registry_name").getAsString());
        config.put(AWSSchemaRegistryConstants.SCHEMA_NAME, spec.get("schema_name").getAsString());
        config.put(AWSSchemaRegistryConstants.DATA_FORMAT, format);
        config.put(AWSSchemaRegistryConstants.SCHEMA_AUTO_REGISTRATION_SETTING, true);
        config.put(AWSSchemaRegistryConstants.COMPRESSION_TYPE,
                "zlib".equals(spec.get("compression").getAsString())
                        ? AWSSchemaRegistryConstants.COMPRESSION.ZLIB.name()
                        : AWSSchemaRegistryConstants.COMPRESSION.NONE.name());

        Datum datum;
        switch (format) {
            case "AVRO": {
                Schema schema = new Schema.Parser().parse(spec.get("schema").getAsString());
                GenericDatumReader<Object> reader = new GenericDatumReader<>(schema);
                datum = value -> reader.read(null,
                        DecoderFactory.get().jsonDecoder(schema, value.toString()));
                break;
            }
            case "JSON": {
                String schema = spec.get("schema").getAsString();
                datum = value -> JsonDataWithSchema.builder(schema, value.toString()).build();
                break;
            }
            case "PROTOBUF": {
                Descriptor message = protobufMessage(spec);
                config.put(AWSSchemaRegistryConstants.PROTOBUF_MESSAGE_TYPE,
                        ProtobufMessageType.DYNAMIC_MESSAGE.getName());
                datum = value -> {
                    DynamicMessage.Builder builder = DynamicMessage.newBuilder(message);
                    JsonFormat.parser().merge(value.toString(), builder);
                    return builder.build();
                };
                break;
            }
            default:
                throw new IllegalArgumentException(
                        "data_format must be AVRO, JSON or PROTOBUF, not " + format);
        }

        GlueSchemaRegistryKafkaSerializer serializer = new GlueSchemaRegistryKafkaSerializer(config);
        String topic = spec.get("topic").getAsString();
        for (JsonElement value : spec.getAsJsonArray("values")) {
            if (value.isJsonNull()) {
                System.out.println();
                continue;
            }
            byte[] bytes = serializer.serialize(topic, datum.of(value));
            System.out.println(Base64.getEncoder().encodeToString(bytes));
        }
        serializer.close();
    }

    /** The message named by the spec's `message` in its `descriptor_set`. */
    private static Descriptor protobufMessage(JsonObject spec) throws Exception {
        FileDescriptorSet set = FileDescriptorSet.parseFrom(
                Files.readAllBytes(Path.of(spec.get("descriptor_set").getAsString())));
        // protoc --include_imports lists every file after the files it imports.
        Map<String, FileDescriptor> files = new HashMap<>();
        for (FileDescriptorProto proto : set.getFileList()) {
            FileDescriptor[] imports = proto.getDependencyList().stream()
                    .map(files::get).toArray(FileDescriptor[]::new);
            files.put(proto.getName(), FileDescriptor.buildFrom(proto, imports));
        }
        String name = spec.get("message").getAsString();
        for (FileDescriptor file : files.values()) {
            String local = name.startsWith(file.getPackage() + ".")
                    ? name.substring(file.getPackage().length() + 1) : name;
            Descriptor found = find(file, local);
            if (found != null && found.getFullName().equals(name)) {
                return found;
            }
        }
        throw new IllegalArgumentException("no message " + name + " in the descriptor set");
    }

    /** The message `local` (dotted for nested messages) of `file`, or null. */
    private static Descriptor find(FileDescriptor file, String local) {
        String[] parts = local.split("\\.");
        Descriptor found = file.findMessageTypeByName(parts[0]);
        for (int i = 1; found != null && i < parts.length; i++) {
            found = found.findNestedTypeByName(parts[i]);
        }
        return found;
    }
}
