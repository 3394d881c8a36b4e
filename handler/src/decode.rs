//! How a record's value becomes the `T` of a [`Record<T>`](crate::Record).

use kafka_lambda_events::{DecodeError, Field, KafkaRecord};
use serde::de::DeserializeOwned;
use std::ops::Deref;

/// A type a record's value can be decoded into.
///
/// Implemented for:
/// - every `T: DeserializeOwned`, parsed as JSON. A tombstone (null value) reads as JSON `null`,
///   so `Option<U>` accepts tombstones and any other type reports them as
///   [`DecodeError::Null`];
/// - [`Bytes`] (the raw value) and [`Text`] (the value as UTF-8), which report a tombstone as
///   [`DecodeError::Null`], and [`Nullable<Bytes>`](Nullable) and [`Nullable<Text>`](Nullable),
///   which read it as `None`. (`Option<Bytes>` cannot be offered: the JSON implementation
///   already covers every `Option<U>`.)
///
/// Implement it yourself for other encodings (Avro, Protobuf, ...); return a [`DecodeError`]
/// naming the record, e.g. with [`KafkaRecord::id`].
pub trait DecodeValue: Sized {
    /// Decodes the value of `record`.
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError>;
}

impl<T: DeserializeOwned> DecodeValue for T {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        record.value_json()
    }
}

/// A record value taken as raw bytes, without any decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(bytes)
    }
}

impl DecodeValue for Bytes {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        non_null(record)
    }
}

impl DecodeValue for Nullable<Bytes> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Ok(Nullable(record.value().map(|b| Bytes(b.to_vec()))))
    }
}

/// A record value taken as UTF-8 text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(pub String);

impl Text {
    /// The text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(text)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DecodeValue for Text {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        non_null(record)
    }
}

impl DecodeValue for Nullable<Text> {
    fn decode_value(record: &KafkaRecord) -> Result<Self, DecodeError> {
        Ok(Nullable(record.value_str()?.map(|s| Text(s.to_owned()))))
    }
}

/// [`Bytes`] or [`Text`] that may be a tombstone (`None`): what `Option<T>` is for JSON types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nullable<T>(pub Option<T>);

impl<T> Nullable<T> {
    /// The value, `None` for a tombstone.
    pub fn into_option(self) -> Option<T> {
        self.0
    }
}

impl<T> Deref for Nullable<T> {
    type Target = Option<T>;

    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    fn from(value: Option<T>) -> Self {
        Nullable(value)
    }
}

/// How a raw value type ([`Bytes`], [`Text`]) decodes: as its [`Nullable`] form, with a
/// tombstone refused.
fn non_null<T>(record: &KafkaRecord) -> Result<T, DecodeError>
where
    Nullable<T>: DecodeValue,
{
    Nullable::<T>::decode_value(record)?
        .0
        .ok_or_else(|| DecodeError::Null {
            record: record.id(),
            field: Field::Value,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        id: u32,
    }

    fn with_value(value: &[u8]) -> KafkaRecord {
        KafkaRecord::new("orders", 0, 7).with_value(value)
    }

    fn tombstone() -> KafkaRecord {
        KafkaRecord::new("orders", 0, 7)
    }

    #[test]
    fn json_types_are_parsed_from_the_value() {
        let order = Order::decode_value(&with_value(br#"{"id":42}"#)).unwrap();
        assert_eq!(order, Order { id: 42 });
    }

    #[test]
    fn malformed_json_names_the_record_and_field() {
        let err = Order::decode_value(&with_value(b"{")).unwrap_err();
        assert!(matches!(err, DecodeError::Json { .. }));
        assert!(
            err.to_string()
                .starts_with("record orders-0@7: value is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_tombstone_is_none_for_option_and_an_error_otherwise() {
        assert_eq!(Option::<Order>::decode_value(&tombstone()).unwrap(), None);
        assert_eq!(
            Option::<Order>::decode_value(&with_value(br#"{"id":1}"#)).unwrap(),
            Some(Order { id: 1 })
        );
        let err = Order::decode_value(&tombstone()).unwrap_err();
        assert!(matches!(err, DecodeError::Null { .. }), "{err}");
    }

    #[test]
    fn bytes_are_taken_verbatim() {
        let raw = [0xff, 0x00, b'{'];
        assert_eq!(&*Bytes::decode_value(&with_value(&raw)).unwrap(), &raw);
        assert_eq!(
            *Nullable::<Bytes>::decode_value(&tombstone()).unwrap(),
            None
        );
        assert_eq!(
            Nullable::<Bytes>::decode_value(&with_value(b"x"))
                .unwrap()
                .into_option(),
            Some(Bytes(b"x".to_vec()))
        );
        assert!(matches!(
            Bytes::decode_value(&tombstone()),
            Err(DecodeError::Null { .. })
        ));
    }

    #[test]
    fn text_must_be_utf8() {
        let text = Text::decode_value(&with_value("héllo [x]".as_bytes())).unwrap();
        assert_eq!(&*text, "héllo [x]");
        assert_eq!(*Nullable::<Text>::decode_value(&tombstone()).unwrap(), None);
        assert!(matches!(
            Text::decode_value(&with_value(&[0xff])),
            Err(DecodeError::Utf8 { .. })
        ));
        assert!(matches!(
            Text::decode_value(&tombstone()),
            Err(DecodeError::Null { .. })
        ));
    }
}
