import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import software.amazon.event.ruler.JsonRuleCompiler;
import software.amazon.event.ruler.Machine;

/**
 * A differential oracle for kafka-lambda's filter: AWS's event-ruler judges each case.
 *
 * <p>Reads JSON lines {@code {"pattern": <pattern JSON>, "event": <event JSON>}} on stdin and
 * prints one line per input line: {@code true} or {@code false} (whether the pattern matches the
 * event, through {@code Machine.rulesForJSONEvent}, as {@code Ruler.matchesRule} does), {@code
 * error: pattern: <message>} when event-ruler refuses the pattern (the message of its
 * {@code $or}-aware compiler, {@code JsonRuleCompiler.check}, when it has one), {@code error: event:
 * <message>} when it refuses the event, {@code error: input: <message>} for a line that is not
 * of that shape.
 *
 * <p>The pattern and the event are handed to event-ruler as the exact text of the line (found by
 * the parser's offsets, never re-serialized), so number spellings ({@code 1e3}, {@code -0}) and
 * string escapes reach it as written.
 */
public final class EventRulerOracle {
    private static final JsonFactory JSON = new JsonFactory();

    private EventRulerOracle() {}

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            out.write(judge(line));
            out.write('\n');
            // Answers reach a caller that waits for them before sending more.
            if (!in.ready()) {
                out.flush();
            }
        }
        out.flush();
    }

    private static String judge(String line) {
        String pattern;
        String event;
        try {
            String[] parts = split(line);
            pattern = parts[0];
            event = parts[1];
        } catch (Exception e) {
            return "error: input: " + oneLine(e);
        }
        Machine machine = Machine.builder().build();
        try {
            machine.addRule("r", pattern);
        } catch (Throwable e) {
            // Machine retries a pattern its $or-aware compiler refused with the older compiler
            // (for "$or" as a field name), whose complaint hides the first one: report that.
            String first = null;
            try {
                first = JsonRuleCompiler.check(pattern);
            } catch (Throwable ignored) {
                // The retry's complaint it is.
            }
            return "error: pattern: " + (first != null ? first.replace('\n', ' ').replace('\r', ' ') : oneLine(e));
        }
        try {
            return machine.rulesForJSONEvent(event).isEmpty() ? "false" : "true";
        } catch (Throwable e) {
            return "error: event: " + oneLine(e);
        }
    }

    /** The raw text of the line's "pattern" and "event" values. */
    private static String[] split(String line) throws Exception {
        String[] parts = new String[2];
        try (JsonParser p = JSON.createParser(line)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new IllegalArgumentException("expected an object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                int start = (int) p.currentTokenLocation().getCharOffset();
                p.skipChildren();
                p.finishToken();
                int end = (int) p.currentLocation().getCharOffset();
                String text = line.substring(start, end);
                if (name.equals("pattern")) {
                    parts[0] = text;
                } else if (name.equals("event")) {
                    parts[1] = text;
                } else {
                    throw new IllegalArgumentException("unknown field " + name);
                }
            }
        }
        if (parts[0] == null || parts[1] == null) {
            throw new IllegalArgumentException("needs \"pattern\" and \"event\"");
        }
        return parts;
    }

    private static String oneLine(Throwable e) {
        String message = e.getClass().getSimpleName() + ": " + e.getMessage();
        return message.replace('\n', ' ').replace('\r', ' ');
    }
}
