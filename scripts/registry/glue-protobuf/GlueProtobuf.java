// Serializes Protobuf messages with AWS's own Glue Schema Registry serializer
// (software.amazon.glue:schema-registry-serde), which registers the schema itself and writes
// Glue's framing and message index: the bytes kafka-lambda must read, written by code that is
// not kafka-lambda's. scripts/registry/produce.py runs it for `"registry": "glue",
// "format": "protobuf"`.
//
// Reads one JSON object on stdin:
//   {"endpoint": "http://127.0.0.1:18082", "region": "us-east-1", "registry_name": "kl-test",
//    "schema_name": "orders", "descriptor_set": "/tmp/set.pb" (protoc --include_imports),
//    "message": "shop.Order.Line", "compression": "none" | "zlib", "topic": "orders",
//    "values": [{...}, null, ...]}
// and prints one line per value: the serialized bytes in base64, or an empty line for null.

import com.amazonaws.services.schemaregistry.serializers.GlueSchemaRegistryKafkaSerializer;
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

public class GlueProtobuf {
    public static void main(String[] args) throws Exception {
        JsonObject spec = JsonParser
                .parseReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                .getAsJsonObject();
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
        Descriptor message = null;
        for (FileDescriptor file : files.values()) {
            String local = name.startsWith(file.getPackage() + ".")
                    ? name.substring(file.getPackage().length() + 1) : name;
            Descriptor found = find(file, local);
            if (found != null && found.getFullName().equals(name)) {
                message = found;
            }
        }
        if (message == null) {
            throw new IllegalArgumentException("no message " + name + " in the descriptor set");
        }

        Map<String, Object> config = new HashMap<>();
        config.put(AWSSchemaRegistryConstants.AWS_ENDPOINT, spec.get("endpoint").getAsString());
        config.put(AWSSchemaRegistryConstants.AWS_REGION, spec.get("region").getAsString());
        config.put(AWSSchemaRegistryConstants.REGISTRY_NAME, spec.get("registry_name").getAsString());
        config.put(AWSSchemaRegistryConstants.SCHEMA_NAME, spec.get("schema_name").getAsString());
        config.put(AWSSchemaRegistryConstants.DATA_FORMAT, "PROTOBUF");
        config.put(AWSSchemaRegistryConstants.SCHEMA_AUTO_REGISTRATION_SETTING, true);
        config.put(AWSSchemaRegistryConstants.PROTOBUF_MESSAGE_TYPE,
                ProtobufMessageType.DYNAMIC_MESSAGE.getName());
        config.put(AWSSchemaRegistryConstants.COMPRESSION_TYPE,
                "zlib".equals(spec.get("compression").getAsString())
                        ? AWSSchemaRegistryConstants.COMPRESSION.ZLIB.name()
                        : AWSSchemaRegistryConstants.COMPRESSION.NONE.name());
        GlueSchemaRegistryKafkaSerializer serializer = new GlueSchemaRegistryKafkaSerializer(config);
        String topic = spec.get("topic").getAsString();
        for (JsonElement value : spec.getAsJsonArray("values")) {
            if (value.isJsonNull()) {
                System.out.println();
                continue;
            }
            DynamicMessage.Builder builder = DynamicMessage.newBuilder(message);
            JsonFormat.parser().merge(value.toString(), builder);
            byte[] bytes = serializer.serialize(topic, builder.build());
            System.out.println(Base64.getEncoder().encodeToString(bytes));
        }
        serializer.close();
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
