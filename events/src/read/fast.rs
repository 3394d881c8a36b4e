//! A parser specialised for the event's shape, in front of the serde one.
//!
//! [`parse`] reads the common case straight into the types: strings without escapes, integers,
//! base64 keys and values, headers as byte lists. It returns `None` as soon as it meets anything
//! else — an escape, a float, a duplicate field, schema metadata, an invalid value — and
//! [`KafkaEvent::from_slice`] then parses with serde, which builds the same event or reports the
//! error with its path. So `parse` never decides that input is invalid, and whatever it accepts
//! serde accepts too, as the same event (the tests check both on generated and broken input).
//!
//! Why: serde's generic visitors cost a call chain per header byte and an allocation per record
//! field name on the way; this parser reads a 6 MB event in about half the time.

use crate::event::{EventSource, KafkaEvent};
use crate::header::Header;
use crate::record::{KafkaRecord, TimestampType};
use indexmap::IndexMap;

/// Deepest nesting of an unknown field's value that is skipped here (serde_json allows 128).
const MAX_DEPTH: usize = 64;

/// Parses `json` when it is an event of the common shape; `None` leaves it to serde.
pub(crate) fn parse(json: &[u8]) -> Option<KafkaEvent> {
    let mut c = Cursor { b: json, i: 0 };
    let event = c.event()?;
    c.ws();
    (c.i == json.len()).then_some(event)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Consumes `null` if it comes next.
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            return true;
        }
        false
    }

    /// The bytes of a string without escapes or control characters.
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' {
            return None;
        }
        let s = &rest[..end];
        self.i += end + 1;
        Some(s)
    }

    fn str(&mut self) -> Option<&'a str> {
        text(self.raw_str()?)
    }

    /// An integer as JSON writes it (no fraction or exponent), within `i64`.
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut n: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        // No digits, a leading zero, or `-0` (which serde_json reads as a float).
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || (negative && n == 0) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
            return None;
        }
        Some(if negative { -n } else { n })
    }

    /// Base64 bytes, or `None` for null (the outer `Option` is whether this parser handles it).
    #[expect(
        clippy::option_option,
        reason = "the outer Option is this parser's `?` bail-out, as everywhere in it"
    )]
    fn base64(&mut self) -> Option<Option<Vec<u8>>> {
        if self.null() {
            return Some(None);
        }
        let s = self.raw_str()?;
        crate::base64_serde::decode(s).ok().map(Some)
    }

    /// Calls `field` with the raw bytes of each key of an object (no escapes, not yet checked to
    /// be UTF-8: a key that is kept or skipped goes through [`text`]), positioned at its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.delimited(b'{', b'}', |p| {
            let key = p.raw_str()?;
            p.eat(b':')?;
            field(p, key)
        })
    }

    /// Calls `element` for each element of an array.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.delimited(b'[', b']', element)
    }

    /// Reads `open`, then items separated by commas (each read by `item`), then `close`.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// How many elements the flat list that comes next has, at most (0 when none comes next):
    /// one more than its commas. Sizes a header value at once instead of growing it byte by byte.
    fn list_len(&mut self) -> usize {
        if self.peek() != Some(b'[') {
            return 0;
        }
        let rest = &self.b[self.i..];
        memchr::memchr(b']', rest)
            .map_or(0, |end| memchr::memchr_iter(b',', &rest[..end]).count() + 1)
    }

    /// A list of bytes as Java writes them (-128..=127; 0..=255 is accepted too), appended to
    /// `out`. The elements are read in one tight loop: headers are most of the numbers of an
    /// event.
    fn byte_list(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        let b = self.b;
        loop {
            self.ws();
            let mut i = self.i;
            let negative = b.get(i) == Some(&b'-');
            if negative {
                i += 1;
            }
            let start = i;
            let mut n: i32 = 0;
            while let Some(&d @ b'0'..=b'9') = b.get(i) {
                if i - start == 3 {
                    return None;
                }
                n = n * 10 + i32::from(d - b'0');
                i += 1;
            }
            let digits = i - start;
            if digits == 0 || (digits > 1 && b[start] == b'0') || (negative && n == 0) {
                return None;
            }
            if let Some(b'.' | b'e' | b'E') = b.get(i) {
                return None;
            }
            let n = if negative { -n } else { n };
            out.push(match n {
                -128..=255 => n as u8,
                _ => return None,
            });
            self.i = i;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips the value of a field the types do not have.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.str().map(drop),
            b'{' => self.object(|c, key| {
                text(key)?;
                c.skip(depth + 1)
            }),
            b'[' => self.array(|c| c.skip(depth + 1)),
            b'-' | b'0'..=b'9' => self.int().map(drop),
            _ => {
                for literal in [&b"null"[..], b"true", b"false"] {
                    if self.b[self.i..].starts_with(literal) {
                        self.i += literal.len();
                        return Some(());
                    }
                }
                None
            }
        }
    }

    fn event(&mut self) -> Option<KafkaEvent> {
        let mut source = None;
        let (mut arn, mut servers) = (Seen::default(), Seen::default());
        let mut records = None;
        self.object(|c, key| match key {
            b"eventSource" if source.is_none() => {
                source = Some(EventSource::from(c.str()?));
                Some(())
            }
            b"eventSourceArn" => arn.set(c.optional_string()?),
            b"bootstrapServers" => servers.set(c.optional_string()?),
            b"records" if records.is_none() => {
                records = Some(c.groups()?);
                Some(())
            }
            b"eventSource" | b"records" => None,
            _ => {
                text(key)?;
                c.skip(0)
            }
        })?;
        Some(KafkaEvent {
            event_source: source?,
            event_source_arn: arn.value.flatten(),
            bootstrap_servers: servers.value.flatten(),
            records: records?,
        })
    }

    /// A string, or `None` for null (the outer `Option` is whether this parser handles it).
    #[expect(
        clippy::option_option,
        reason = "the outer Option is this parser's `?` bail-out, as everywhere in it"
    )]
    fn optional_string(&mut self) -> Option<Option<String>> {
        if self.null() {
            return Some(None);
        }
        self.str().map(|s| Some(s.to_owned()))
    }

    fn groups(&mut self) -> Option<IndexMap<String, Vec<KafkaRecord>>> {
        let mut groups = IndexMap::new();
        self.object(|c, key| {
            let mut records = Vec::new();
            c.array(|c| {
                records.push(c.record()?);
                Some(())
            })?;
            groups
                .insert(text(key)?.to_owned(), records)
                .is_none()
                .then_some(())
        })?;
        Some(groups)
    }

    fn record(&mut self) -> Option<KafkaRecord> {
        let (mut topic, mut partition, mut offset) = (None, None, None);
        let (mut timestamp, mut timestamp_type) = (None, None);
        let (mut key, mut value, mut headers) = (Seen::default(), Seen::default(), Seen::default());
        self.object(|c, field| {
            match field {
                b"topic" if topic.is_none() => topic = Some(c.str()?.to_owned()),
                b"partition" if partition.is_none() => {
                    partition = Some(i32::try_from(c.int()?).ok()?);
                }
                b"offset" if offset.is_none() => offset = Some(c.int()?),
                b"timestamp" if timestamp.is_none() => timestamp = Some(c.int()?),
                b"timestampType" if timestamp_type.is_none() => {
                    timestamp_type = Some(match c.str()? {
                        "CREATE_TIME" => TimestampType::CreateTime,
                        "LOG_APPEND_TIME" => TimestampType::LogAppendTime,
                        "NO_TIMESTAMP_TYPE" => TimestampType::NoTimestampType,
                        _ => return None,
                    });
                }
                b"key" => key.set(c.base64()?)?,
                b"value" => value.set(c.base64()?)?,
                b"headers" => headers.set(c.headers()?)?,
                // Schema metadata, and a duplicate of any field, are left to serde.
                b"topic"
                | b"partition"
                | b"offset"
                | b"timestamp"
                | b"timestampType"
                | b"keySchemaMetadata"
                | b"valueSchemaMetadata" => return None,
                _ => {
                    text(field)?;
                    c.skip(0)?;
                }
            }
            Some(())
        })?;
        Some(KafkaRecord {
            topic: topic?,
            partition: partition?,
            offset: offset?,
            timestamp: timestamp?,
            timestamp_type: timestamp_type?,
            key: key.value.flatten(),
            value: value.value.flatten(),
            headers: headers.value.unwrap_or_default(),
            key_schema_metadata: None,
            value_schema_metadata: None,
        })
    }

    fn headers(&mut self) -> Option<Vec<Header>> {
        let mut headers = Vec::new();
        if self.null() {
            return Some(headers);
        }
        self.array(|c| {
            c.object(|c, name| {
                let mut value = Vec::with_capacity(c.list_len());
                if !c.null() {
                    c.byte_list(&mut value)?;
                }
                headers.push(Header {
                    name: text(name)?.into(),
                    value,
                });
                Some(())
            })
        })?;
        Some(headers)
    }
}

/// The raw bytes of a string as text, when serde_json would read them as such (UTF-8, no
/// control characters).
fn text(s: &[u8]) -> Option<&str> {
    if s.iter().any(|&b| b < 0x20) {
        return None;
    }
    std::str::from_utf8(s).ok()
}

/// A field that may appear once.
struct Seen<T> {
    value: Option<T>,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen { value: None }
    }
}

impl<T> Seen<T> {
    /// Records the value; `None` (leave it to serde) on a duplicate.
    fn set(&mut self, value: T) -> Option<()> {
        if self.value.is_some() {
            return None;
        }
        self.value = Some(value);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SchemaMetadata;
    use proptest::prelude::*;

    fn serde_parse(json: &[u8]) -> Option<KafkaEvent> {
        crate::error::from_slice_with_path::<KafkaEvent>(json).ok()
    }

    fn record() -> impl Strategy<Value = KafkaRecord> {
        (
            "[a-z][a-z0-9._-]{0,12}",
            0..8i32,
            any::<i64>(),
            prop_oneof![Just(-1i64), 0..2_000_000_000_000i64],
            prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            prop::collection::vec(
                (
                    "[a-zA-Z0-9 é_-]{0,10}",
                    prop::collection::vec(any::<u8>(), 0..20),
                ),
                0..3,
            ),
            0..3u8,
        )
            .prop_map(
                |(topic, partition, offset, ts, key, value, headers, kind)| KafkaRecord {
                    topic,
                    partition,
                    offset,
                    timestamp: ts,
                    timestamp_type: [
                        TimestampType::CreateTime,
                        TimestampType::LogAppendTime,
                        TimestampType::NoTimestampType,
                    ][kind as usize],
                    key,
                    value,
                    headers: headers
                        .into_iter()
                        .map(|(n, v)| Header::new(n, v))
                        .collect(),
                    key_schema_metadata: None,
                    value_schema_metadata: None,
                },
            )
    }

    fn event() -> impl Strategy<Value = KafkaEvent> {
        (
            prop::collection::vec(record(), 0..6),
            any::<bool>(),
            prop::option::of("[a-z0-9:.,-]{0,30}"),
        )
            .prop_map(|(records, msk, servers)| {
                let mut b = KafkaEvent::builder(if msk {
                    EventSource::Msk
                } else {
                    EventSource::SelfManagedKafka
                })
                .records(records);
                if msk {
                    b = b.event_source_arn("arn:aws:kafka:us-east-1:1:cluster/c/1");
                }
                if let Some(s) = servers {
                    b = b.bootstrap_servers(s);
                }
                b.build()
            })
    }

    proptest! {
        #[test]
        fn events_read_the_same_as_with_serde(event in event()) {
            for json in [event.to_vec(), serde_json::to_vec_pretty(&event).unwrap()] {
                let fast = parse(&json);
                prop_assert_eq!(fast.as_ref(), Some(&event));
                prop_assert_eq!(fast, serde_parse(&json));
            }
        }

        #[test]
        fn broken_input_is_left_to_serde_or_read_as_serde_reads_it(
            event in event(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            replace in any::<bool>(),
        ) {
            let mut json = event.to_vec();
            let at = cut.index(json.len());
            if replace {
                json[at] = byte;
            } else {
                json.insert(at, byte);
            }
            if let Some(fast) = parse(&json) {
                prop_assert_eq!(Some(fast), serde_parse(&json));
            }
        }

        #[test]
        fn truncated_input_is_never_accepted(event in event(), cut in any::<prop::sample::Index>()) {
            let json = event.to_vec();
            let at = cut.index(json.len());
            prop_assert_eq!(parse(&json[..at]), None);
        }
    }

    #[test]
    fn unusual_but_valid_shapes_are_left_to_serde() {
        let cases: &[&[u8]] = &[
            br#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"e30=","keySchemaMetadata":{"dataFormat":"AVRO","schemaId":"1"}}]}}"#,
            br#"{"eventSource":"aws:\u006bafka","records":{}}"#,
            br#"{"eventSource":"aws:kafka","records":{},"extra":1.5}"#,
        ];
        for json in cases {
            assert_eq!(parse(json), None, "{}", String::from_utf8_lossy(json));
            assert!(serde_parse(json).is_some());
        }
        let with_metadata = serde_parse(cases[0]).unwrap();
        assert_eq!(
            with_metadata.records().next().unwrap().key_schema_metadata,
            Some(SchemaMetadata {
                data_format: crate::record::DataFormat::Avro,
                schema_id: "1".into()
            })
        );
    }

    #[test]
    fn unknown_fields_are_skipped_and_nulls_read_as_absent() {
        let json = br#" { "x": {"a": [1, -2, true, null, "s"]}, "eventSource": "SelfManagedKafka",
            "eventSourceArn": null, "bootstrapServers": "b:9092", "records": { "t-1": [ {
            "topic": "t", "partition": 1, "offset": 0, "timestamp": -1,
            "timestampType": "NO_TIMESTAMP_TYPE", "key": null, "value": null, "headers": null,
            "future": {} } ] } } "#;
        let fast = parse(json).unwrap();
        assert_eq!(Some(&fast), serde_parse(json).as_ref());
        let r = fast.records().next().unwrap();
        assert_eq!((r.key(), r.value(), r.headers().len()), (None, None, 0));
    }
}
