//! Kafka record headers and their wire form: a list of single-entry objects whose value is a
//! list of **signed** Java bytes, `[{"traceparent": [48, 48, 45, ...]}]`.

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;

/// One Kafka record header. Names may repeat within a record; order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The header value. A `null` value on the wire is read as empty.
    pub value: Vec<u8>,
}

impl Header {
    /// Makes a header from a name and raw bytes.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
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
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(&self.0.name, &JavaBytes(&self.0.value))?;
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

struct HeaderList;

impl<'de> Visitor<'de> for HeaderList {
    type Value = Vec<Header>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of {\"name\": [byte, ...]} objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

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
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(ByteList)?;
            self.0.push(Header { name, value });
        }
        Ok(())
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

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

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
