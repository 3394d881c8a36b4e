//! A pattern's JSON as written: serde_json's `Value`, except that a number keeps its text, since
//! an exact number matches the same text only (Lambda: "300, 300.0, and 3.0e2 are not considered
//! equal"). Objects are ordered by key and a repeated key keeps its last value, as in serde_json.
//!
//! Read from text that serde_json has already accepted as a `Value` (so its errors, positions
//! and nesting limit are serde_json's): every value is taken raw, numbers kept as their text and
//! anything else read from that text.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// An object's fields, by key.
pub(super) type Map<K, V> = std::collections::BTreeMap<K, V>;

/// A JSON value of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Map<String, Value>),
}

/// A JSON number: its text as written, and the double it denotes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Number {
    text: Box<str>,
    value: f64,
}

impl Number {
    /// The number as written in the pattern.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// The nearest double.
    pub(super) fn as_f64(&self) -> f64 {
        self.value
    }
}

impl Value {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub(super) fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    pub(super) fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    pub(super) fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
}

/// Compact JSON, numbers as written.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let string = |f: &mut fmt::Formatter<'_>, s: &str| {
            f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?)
        };
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => f.write_str(&n.text),
            Value::String(s) => string(f, s),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Object(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    string(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Reads a value through serde_json only (it takes the value raw).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        let text = raw.get();
        if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
            return Ok(Value::Number(Number {
                text: text.into(),
                value: text.parse().map_err(de::Error::custom)?,
            }));
        }
        serde_json::Deserializer::from_str(text)
            .deserialize_any(ValueVisitor)
            .map_err(de::Error::custom)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            fields.insert(k, v);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn numbers_keep_their_text() {
        let Value::Array(items) = parse("[300, 300.0, 3.0e2, -0, 1E3, 18446744073709551616]")
        else {
            panic!("expected a list");
        };
        let texts: Vec<&str> = items
            .iter()
            .filter_map(Value::as_number)
            .map(Number::text)
            .collect();
        assert_eq!(
            texts,
            ["300", "300.0", "3.0e2", "-0", "1E3", "18446744073709551616"]
        );
        assert_eq!(items[2].as_number().unwrap().as_f64(), 300.0);
    }

    #[test]
    fn the_rest_reads_as_serde_json_does() {
        let v = parse(r#" {"b": [true, null, "x\"y"], "a": {"n": 1.5}, "b": ["last"]} "#);
        assert_eq!(v.to_string(), r#"{"a":{"n":1.5},"b":["last"]}"#);
        assert_eq!(
            parse(r#""\ud83d\ude00\n""#),
            Value::String("😀\n".to_owned())
        );
    }
}
