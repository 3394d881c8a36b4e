package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.events.KafkaEvent;
import com.amazonaws.services.lambda.runtime.events.KafkaEvent.KafkaEventRecord;
import com.amazonaws.services.lambda.runtime.events.KafkaEvent.SchemaMetadata;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/**
 * Conformance function {@code java}: AWS's Java runtime interface client
 * (aws-lambda-java-runtime-interface-client) deserializes the event into aws-lambda-java-events'
 * {@link KafkaEvent}; this handler writes one line per record (see ../README.md; LIMITS.md lists
 * what the library cannot carry).
 *
 * <ul>
 *   <li>KafkaEvent gives key and value as the event's base64 text; they are decoded with
 *       java.util.Base64 (the library has no decoder of its own) and written re-encoded.
 *   <li>Header values are byte[] as the library gives them (Jackson reads the event's arrays of
 *       signed bytes).
 *   <li>SchemaMetadata models dataFormat and schemaId only: other fields of keySchemaMetadata /
 *       valueSchemaMetadata are not written. Every other field of the line is modelled.
 *   <li>Poison records: aws-lambda-java-events has no Kafka partial batch response
 *       (StreamsEventResponse's itemIdentifier is a String, for Kinesis/DynamoDB sequence
 *       numbers; nothing Kafka-specific exists) and Powertools for Java's Kafka and batch
 *       utilities are not used (see LIMITS.md), so, as the contract says for a library without
 *       one, a poison record fails the whole invocation: the handler throws after writing every
 *       line.
 * </ul>
 */
public final class Handler implements RequestHandler<KafkaEvent, Void> {
  private static final String NAME = "java";
  private static final String POISON_HEADER = "kl-poison";

  @Override
  public Void handleRequest(KafkaEvent event, Context context) {
    String out = System.getenv("KL_CONFORMANCE_OUT");
    if (out == null || out.isEmpty()) {
      throw new IllegalStateException("KL_CONFORMANCE_OUT is not set");
    }
    StringBuilder lines = new StringBuilder();
    List<String> poisoned = new ArrayList<>();
    Map<String, List<KafkaEventRecord>> records = event.getRecords();
    if (records != null) {
      for (List<KafkaEventRecord> partition : records.values()) {
        if (partition == null) {
          continue;
        }
        for (KafkaEventRecord record : partition) {
          boolean poison = isPoison(record);
          line(lines, event, record, context.getAwsRequestId(), poison);
          if (poison) {
            poisoned.add(record.getTopic() + "-" + record.getPartition() + "@" + record.getOffset());
          }
        }
      }
    }
    if (lines.length() > 0) {
      append(out, lines.toString().getBytes(StandardCharsets.UTF_8));
    }
    if (!poisoned.isEmpty()) {
      throw new RuntimeException(
          "poison records (header " + POISON_HEADER + "): " + String.join(", ", poisoned));
    }
    return null;
  }

  private static boolean isPoison(KafkaEventRecord record) {
    if (record.getHeaders() == null) {
      return false;
    }
    for (Map<String, byte[]> header : record.getHeaders()) {
      if (header != null && header.containsKey(POISON_HEADER)) {
        return true;
      }
    }
    return false;
  }

  private static void line(
      StringBuilder sb, KafkaEvent event, KafkaEventRecord r, String invocation, boolean poison) {
    sb.append("{\"function\":");
    string(sb, NAME);
    sb.append(",\"invocation\":");
    string(sb, invocation);
    sb.append(",\"eventSource\":");
    string(sb, event.getEventSource());
    sb.append(",\"eventSourceArn\":");
    string(sb, event.getEventSourceArn());
    sb.append(",\"bootstrapServers\":");
    string(sb, event.getBootstrapServers());
    sb.append(",\"topic\":");
    string(sb, r.getTopic());
    sb.append(",\"partition\":").append(r.getPartition());
    sb.append(",\"offset\":").append(r.getOffset());
    sb.append(",\"timestamp\":").append(r.getTimestamp());
    sb.append(",\"timestampType\":");
    string(sb, r.getTimestampType());
    sb.append(",\"key\":");
    string(sb, reencode(r.getKey()));
    sb.append(",\"value\":");
    string(sb, reencode(r.getValue()));
    sb.append(",\"headers\":");
    if (r.getHeaders() == null) {
      sb.append("null");
    } else {
      sb.append('[');
      boolean first = true;
      for (Map<String, byte[]> header : r.getHeaders()) {
        if (header == null) {
          continue;
        }
        for (Map.Entry<String, byte[]> entry : header.entrySet()) {
          sb.append(first ? "[" : ",[");
          first = false;
          string(sb, entry.getKey());
          sb.append(',');
          string(sb, entry.getValue() == null ? null : Base64.getEncoder().encodeToString(entry.getValue()));
          sb.append(']');
        }
      }
      sb.append(']');
    }
    sb.append(",\"keySchemaMetadata\":");
    schema(sb, r.getKeySchemaMetadata());
    sb.append(",\"valueSchemaMetadata\":");
    schema(sb, r.getValueSchemaMetadata());
    sb.append(",\"poison\":").append(poison).append("}\n");
  }

  /** The base64 text of the event decoded to bytes and encoded again (null stays null). */
  private static String reencode(String base64) {
    return base64 == null
        ? null
        : Base64.getEncoder().encodeToString(Base64.getDecoder().decode(base64));
  }

  private static void schema(StringBuilder sb, SchemaMetadata metadata) {
    if (metadata == null) {
      sb.append("null");
      return;
    }
    sb.append("{\"dataFormat\":");
    string(sb, metadata.getDataFormat());
    sb.append(",\"schemaId\":");
    string(sb, metadata.getSchemaId());
    sb.append('}');
  }

  /** A JSON string (or null); control characters and surrogates are escaped. */
  private static void string(StringBuilder sb, String s) {
    if (s == null) {
      sb.append("null");
      return;
    }
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') {
        sb.append('\\').append(c);
      } else if (c < 0x20 || Character.isSurrogate(c)) {
        sb.append(String.format("\\u%04x", (int) c));
      } else {
        sb.append(c);
      }
    }
    sb.append('"');
  }

  /** Appends all of {@code bytes} with one write on a file opened with O_APPEND. */
  private static void append(String path, byte[] bytes) {
    try (FileChannel channel =
        FileChannel.open(
            Paths.get(path),
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.APPEND)) {
      ByteBuffer buffer = ByteBuffer.wrap(bytes);
      while (buffer.hasRemaining()) {
        channel.write(buffer);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot append to " + path, e);
    }
  }
}
