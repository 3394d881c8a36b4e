//! Base64 for record keys and values: decoded while parsing, encoded while serializing.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// Standard alphabet, padded output (what AWS sends).
pub(crate) const ENCODER: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Lenient decoder: AWS's own documentation samples carry non-canonical trailing bits
/// (`"abcDEFghiJKLmnoPQRstuVWXyz1234=="`) and some producers drop the padding.
pub(crate) const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&ENCODER.encode(b)),
        None => s.serialize_none(),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    d.deserialize_option(OptionalBase64)
}

struct OptionalBase64;

impl<'de> Visitor<'de> for OptionalBase64 {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Base64Str).map(Some)
    }
}

struct Base64Str;

impl Visitor<'_> for Base64Str {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        DECODER
            .decode(s)
            .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
    }
}
