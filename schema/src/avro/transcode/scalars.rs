//! The JSON text of Avro's scalars, as the [parent module](super)'s table says: strings
//! escaped, bytes as base64, UUIDs hyphenated, non-finite numbers as strings, decimals as their
//! exact digits.

use base64::Engine;

pub(super) fn write_str(s: &str, out: &mut Vec<u8>) {
    kafka_lambda_events::write_json_string(out, s);
}

pub(super) fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).expect("a datum's bytes fit in memory");
    out.resize(start + len, 0);
    base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("the buffer has the encoded length");
    out.push(b'"');
}

pub(super) fn write_uuid(uuid: &uuid::Uuid, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        uuid.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// A number; NaN and the infinities, which JSON lacks, as strings. A `float` is written as
/// the shortest decimal that reads back to the same `f32`.
pub(super) fn write_float<F: Into<f64> + serde::Serialize + Copy>(f: F, out: &mut Vec<u8>) {
    let wide: f64 = f.into();
    if wide.is_finite() {
        serde_json::to_writer(&mut *out, &f).expect("writing a number to a Vec cannot fail");
    } else if wide.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if wide > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// A decimal's unscaled value (big-endian two's complement) with `scale` digits after the
/// point, as a JSON string of its exact digits: `"-12.30"`, `"0.05"`, `"7"`.
pub(super) fn write_decimal(unscaled: &[u8], scale: usize, out: &mut Vec<u8>) {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    // The magnitude, big-endian: the two's complement negated for a negative number.
    let mut magnitude: Vec<u8> = unscaled.to_vec();
    if negative {
        let mut carry = true;
        for byte in magnitude.iter_mut().rev() {
            let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = overflow;
        }
    }
    // Decimal digits by repeated division of the magnitude by 10, least significant first.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder: u32 = 0;
        for byte in &mut magnitude {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 10).expect("a quotient below 256");
            remainder = value % 10;
        }
        digits.push(b'0' + u8::try_from(remainder).expect("a digit"));
    }
    // At least one digit before the point.
    while digits.len() <= scale {
        digits.push(b'0');
    }
    out.push(b'"');
    if negative {
        out.push(b'-');
    }
    for (i, digit) in digits.iter().rev().enumerate() {
        if i == digits.len() - scale {
            out.push(b'.');
        }
        out.push(*digit);
    }
    out.push(b'"');
}
