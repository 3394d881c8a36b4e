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

/// Decodes `b` as the lenient [`DECODER`] does. Canonical padded base64, what AWS and the poller
/// send, goes through `base64-simd` (several times faster on 1 KB values); it accepts a strict
/// subset of what [`DECODER`] accepts and decodes it to the same bytes, so only other input
/// (non-canonical trailing bits, missing padding, invalid) takes the slower decoder.
pub(crate) fn decode(b: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    match base64_simd::STANDARD.decode_to_vec(b) {
        Ok(bytes) => Ok(bytes),
        Err(_) => DECODER.decode(b),
    }
}

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
        // As bytes: serde_json then hands over the string's raw bytes without checking that
        // they are UTF-8, which the base64 decoder checks more strictly anyway (ASCII only).
        d.deserialize_bytes(Base64Str).map(Some)
    }
}

struct Base64Str;

impl Visitor<'_> for Base64Str {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        self.visit_bytes(s.as_bytes())
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
        decode(b).map_err(|e| E::custom(format_args!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn canonical_and_unpadded_base64_decode_to_the_original(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048)
        ) {
            let encoded = ENCODER.encode(&bytes);
            prop_assert_eq!(&decode(encoded.as_bytes()).unwrap(), &bytes);
            let unpadded = encoded.trim_end_matches('=');
            prop_assert_eq!(&decode(unpadded.as_bytes()).unwrap(), &bytes);
        }

        #[test]
        fn the_fast_path_accepts_and_rejects_what_the_lenient_decoder_does(
            s in "[A-Za-z0-9+/=!]{0,80}"
        ) {
            prop_assert_eq!(decode(s.as_bytes()).ok(), DECODER.decode(s.as_bytes()).ok());
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_accepted() {
        // From AWS's documentation sample: the last character carries non-zero trailing bits.
        let sample = b"abcDEFghiJKLmnoPQRstuVWXyz1234==";
        assert_eq!(decode(sample).unwrap(), DECODER.decode(sample).unwrap());
    }
}
