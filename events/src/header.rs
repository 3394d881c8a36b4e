//! Kafka record headers and their wire form: a list of single-entry objects whose value is a
//! list of **signed** Java bytes, `[{"traceparent": [48, 48, 45, ...]}]`.
//!
//! # Header names that are not UTF-8
//!
//! Kafka's protocol makes a header name any bytes; every client writes UTF-8, but nothing stops
//! one that does not. The event holds a name as a JSON string, so such a name is mapped the way
//! Python's `surrogateescape` error handler (PEP 383) maps it: the UTF-8 parts are themselves,
//! and each byte that is not part of a valid UTF-8 sequence (always `0x80..=0xFF`) becomes the
//! lone surrogate `U+DC80 + (byte − 0x80)`, written as the escape `"\udcXX"`. A UTF-8 name is
//! unchanged, and no UTF-8 name holds a surrogate, so the mapping is lossless both ways:
//! [`HeaderName::as_bytes`] gives back the bytes the producer wrote, and Python's
//! `name.encode("utf-8", "surrogateescape")` does the same. JSON parsers that keep lone surrogates
//! (JavaScript, Python, Jackson) read the event as is; `serde_json` reads it into this crate's
//! types, but not into a `serde_json::Value` (whose strings must be valid UTF-8).

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serializer};
use std::borrow::Cow;
use std::fmt;

/// One Kafka record header. Names may repeat within a record; order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name: bytes, almost always UTF-8 text (see [`HeaderName`]).
    pub name: HeaderName,
    /// The header value. A `null` value on the wire is read as empty.
    pub value: Vec<u8>,
}

impl Header {
    /// Makes a header from a name (text or bytes) and raw bytes.
    pub fn new(name: impl Into<HeaderName>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A header name as Kafka holds it: bytes. Compares equal to a `&str` with the same bytes.
/// [`as_str`](Self::as_str) is the name as text when it is UTF-8 (as it is from every common
/// client); the module documentation says how other names travel in the event.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderName(Vec<u8>);

impl HeaderName {
    /// The name's bytes, exactly as the producer wrote them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as text, `None` when it is not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The name as text, each invalid byte sequence replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The name's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Replaces the name by `bytes`, keeping the allocation (for buffers reused per record).
    pub fn set_bytes(&mut self, bytes: &[u8]) {
        self.0.clear();
        self.0.extend_from_slice(bytes);
    }

    /// The name from its JSON string's contents as bytes (escapes resolved): a lone surrogate
    /// `U+DC80..=U+DCFF`, which `serde_json` hands over in its 3-byte generalized UTF-8 form
    /// (`ED B2 80` ..= `ED B3 BF`), is the byte it stands for.
    pub(crate) fn from_wire(bytes: &[u8]) -> Result<HeaderName, String> {
        if std::str::from_utf8(bytes).is_ok() {
            return Ok(HeaderName(bytes.to_vec()));
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i..] {
                [0xED, second @ (0xB2 | 0xB3), third @ 0x80..=0xBF, ..] => {
                    out.push(0x80 | ((second & 1) << 6) | (third & 0x3F));
                    i += 3;
                }
                [b, ..] => {
                    out.push(b);
                    i += 1;
                }
                [] => break,
            }
        }
        // serde_json hands over UTF-8 but for the surrogates a string's escapes held: any other
        // than the mapping's is an error naming the name.
        if has_surrogates_outside_the_escape_range(bytes) {
            return Err(format!(
                "header name {:?} holds a surrogate other than U+DC80..=U+DCFF",
                String::from_utf8_lossy(bytes)
            ));
        }
        Ok(HeaderName(out))
    }

    /// Appends the name as a JSON string literal: UTF-8 escaped as `serde_json` does, other
    /// bytes as `\udcXX` (see the module documentation).
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        if let Some(text) = self.as_str() {
            crate::json::write_str(buf, text);
            return;
        }
        buf.push(b'"');
        for chunk in self.0.utf8_chunks() {
            crate::json::write_str_body(buf, chunk.valid());
            for &b in chunk.invalid() {
                buf.extend_from_slice(format!("\\u{:04x}", 0xDC00 + u16::from(b)).as_bytes());
            }
        }
        buf.push(b'"');
    }
}

/// Whether `bytes` (generalized UTF-8 from `serde_json`) holds a surrogate outside the range the
/// mapping uses: `ED A0..=B1 xx` or `ED B4..=BF xx`.
fn has_surrogates_outside_the_escape_range(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w[0] == 0xED && matches!(w[1], 0xA0..=0xB1 | 0xB4..=0xBF))
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl From<&str> for HeaderName {
    fn from(name: &str) -> Self {
        HeaderName(name.as_bytes().to_vec())
    }
}

impl From<String> for HeaderName {
    fn from(name: String) -> Self {
        HeaderName(name.into_bytes())
    }
}

impl From<&[u8]> for HeaderName {
    fn from(name: &[u8]) -> Self {
        HeaderName(name.to_vec())
    }
}

impl From<Vec<u8>> for HeaderName {
    fn from(name: Vec<u8>) -> Self {
        HeaderName(name)
    }
}

impl PartialEq<str> for HeaderName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for HeaderName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for HeaderName {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

/// `#[serde(with = "crate::header::list")]` for `Vec<Header>`.
pub(crate) mod list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(headers: &[Header], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(headers.len()))?;
        for h in headers {
            seq.serialize_element(&OneHeader(h))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Header>, D::Error> {
        d.deserialize_option(HeaderList)
    }
}

struct OneHeader<'a>(&'a Header);

impl serde::Serialize for OneHeader<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(name) = self.0.name.as_str() else {
            // A name that is not UTF-8 has no `&str` for a serializer's map key: its JSON
            // object is written here, escapes and all, and handed over as raw JSON.
            let mut json = Vec::new();
            json.push(b'{');
            self.0.name.write_json(&mut json);
            json.push(b':');
            crate::json::write_java_bytes(&mut json, &self.0.value);
            json.push(b'}');
            let raw = String::from_utf8(json)
                .map_err(serde::ser::Error::custom)
                .and_then(|json| {
                    serde_json::value::RawValue::from_string(json)
                        .map_err(serde::ser::Error::custom)
                })?;
            return serde::Serialize::serialize(&raw, s);
        };
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(name, &JavaBytes(&self.0.value))?;
        map.end()
    }
}

struct JavaBytes<'a>(&'a [u8]);

impl serde::Serialize for JavaBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &b in self.0 {
            seq.serialize_element(&(b as i8))?;
        }
        seq.end()
    }
}

/// The visitor methods of a list that may be `null` (or missing, which serde reads as `none`):
/// `null` is the empty list, anything else is read as a sequence.
macro_rules! null_is_empty_list {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    };
}

struct HeaderList;

impl<'de> Visitor<'de> for HeaderList {
    type Value = Vec<Header>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of {\"name\": [byte, ...]} objects")
    }

    null_is_empty_list!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut headers = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while seq.next_element_seed(HeaderObject(&mut headers))?.is_some() {}
        Ok(headers)
    }
}

/// One `{"name": [bytes]}` object; appends its entries (normally exactly one) to the list.
struct HeaderObject<'a>(&'a mut Vec<Header>);

impl<'de> de::DeserializeSeed<'de> for HeaderObject<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header object {\"name\": [byte, ...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key_seed(NameSeed)? {
            let value = map.next_value_seed(ByteList)?;
            self.0.push(Header { name, value });
        }
        Ok(())
    }
}

/// A header name, read as the bytes of its JSON string (see [`HeaderName::from_wire`]).
struct NameSeed;

impl<'de> de::DeserializeSeed<'de> for NameSeed {
    type Value = HeaderName;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HeaderName, D::Error> {
        if crate::error::locating() {
            d.deserialize_str(self)
        } else {
            d.deserialize_bytes(self)
        }
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = HeaderName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<HeaderName, E> {
        Ok(HeaderName::from(name))
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<HeaderName, E> {
        HeaderName::from_wire(name).map_err(E::custom)
    }
}

/// A list of bytes as Java sends them (-128..=127); 0..=255 is accepted too.
struct ByteList;

impl<'de> de::DeserializeSeed<'de> for ByteList {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ByteList {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of bytes (integers from -128 to 255) or null")
    }

    null_is_empty_list!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        while let Some(JavaByte(b)) = seq.next_element()? {
            bytes.push(b);
        }
        Ok(bytes)
    }
}

/// One header byte; checked while it is read, so an error's path points at the element.
struct JavaByte(u8);

impl<'de> Deserialize<'de> for JavaByte {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match i64::deserialize(d)? {
            n @ -128..=255 => Ok(JavaByte(n as u8)),
            n => Err(de::Error::custom(format_args!(
                "header byte {n} is out of range (-128..=255)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventSource, EventWriter, KafkaEvent, KafkaRecord, RecordRef, TimestampType};

    /// An event holding one record with `headers`, written by [`EventWriter`].
    fn event_with(headers: &[Header]) -> Vec<u8> {
        let mut w = EventWriter::new(&EventSource::SelfManagedKafka, None, Some("k:9092"));
        w.push(&RecordRef {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers,
            key_schema_metadata: None,
            value_schema_metadata: None,
        });
        w.finish()
    }

    fn foreign() -> Vec<Header> {
        vec![
            Header::new(&b"tr\xffce\x80"[..], "v"),
            Header::new(&b"\xc3"[..], ""),
            Header::new("plain \"quoted\" é", vec![1, 255]),
            Header::new(&b"mixed-\xe2\x82-\xe2\x82\xac"[..], "euro"),
        ]
    }

    #[test]
    fn a_name_that_is_not_utf8_is_written_with_surrogate_escapes() {
        let json = String::from_utf8(event_with(&foreign())).unwrap();
        assert!(json.contains(r#"{"tr\udcffce\udc80":[118]}"#), "{json}");
        assert!(json.contains(r#"{"\udcc3":[]}"#), "{json}");
        assert!(json.contains(r#"{"mixed-\udce2\udc82-€":"#), "{json}");
        assert!(json.contains(r#"{"plain \"quoted\" é":[1,-1]}"#), "{json}");
    }

    #[test]
    fn every_header_name_reads_back_byte_for_byte() {
        let event = KafkaEvent::from_slice(&event_with(&foreign())).unwrap();
        let record = event.records().next().unwrap();
        assert_eq!(record.headers(), foreign().as_slice());
        assert_eq!(record.headers()[0].name.as_str(), None);
        assert_eq!(record.headers()[2].name, "plain \"quoted\" é");
    }

    #[test]
    fn serde_writes_what_the_event_writer_writes_and_reads_it_back() {
        let event = KafkaEvent::from_slice(&event_with(&foreign())).unwrap();
        let record = event.records().next().unwrap().clone();
        let json = serde_json::to_vec(&record).unwrap();
        assert!(
            String::from_utf8_lossy(&json).contains(r#"{"tr\udcffce\udc80":[118]}"#),
            "{}",
            String::from_utf8_lossy(&json)
        );
        let back: KafkaRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_surrogate_outside_the_escape_range_is_an_error_naming_it() {
        let json = br#"[{"bad\ud800x":[1]}]"#;
        let mut de = serde_json::Deserializer::from_slice(json);
        let error = list::deserialize(&mut de).unwrap_err().to_string();
        assert!(error.contains("surrogate"), "{error}");
    }

    #[test]
    fn python_surrogateescape_names_read_as_the_bytes_python_means() {
        // json.dumps({b"a\xff".decode("utf-8", "surrogateescape"): [1]}) in Python.
        let mut de = serde_json::Deserializer::from_slice(br#"[{"a\udcff": [1]}]"#);
        let headers = list::deserialize(&mut de).unwrap();
        assert_eq!(headers[0].name.as_bytes(), b"a\xff");
    }
}
