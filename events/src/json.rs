//! The few JSON primitives the streaming writer needs, byte-identical to `serde_json`'s output.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, escaping exactly as `serde_json` does.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    write_str_body(buf, s);
    buf.push(b'"');
}

/// Appends the escaped contents of a JSON string literal, without the quotes.
pub(crate) fn write_str_body(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most text needs no escape: its clean prefix is found 16 bytes at a time (a test the
    // compiler turns into vector instructions) and copied whole.
    let clean = bytes
        .chunks_exact(16)
        .take_while(|chunk| !chunk.iter().fold(false, |any, &b| any | needs_escape(b)))
        .count()
        * 16;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escape);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Whether `b` cannot stand in a JSON string as it is.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends an integer in decimal.
pub(crate) fn write_int<I: itoa::Integer>(buf: &mut Vec<u8>, n: I) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The decimal text of every byte read as a signed Java byte (`0`..`127`, `-128`..`-1`), so a
/// header byte is written with one copy instead of an integer formatting.
const JAVA_BYTE_TEXT: [([u8; 4], u8); 256] = {
    let mut table = [([0u8; 4], 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let value = b as u8 as i8 as i16;
        let (mut text, mut len) = ([0u8; 4], 0);
        if value < 0 {
            text[0] = b'-';
            len = 1;
        }
        let magnitude = value.unsigned_abs();
        if magnitude >= 100 {
            text[len] = b'0' + (magnitude / 100) as u8;
            len += 1;
        }
        if magnitude >= 10 {
            text[len] = b'0' + (magnitude / 10 % 10) as u8;
            len += 1;
        }
        text[len] = b'0' + (magnitude % 10) as u8;
        len += 1;
        table[b] = (text, len as u8);
        b += 1;
    }
    table
};

/// Appends bytes as a JSON array of signed Java bytes (`[104,-1,0]`).
pub(crate) fn write_java_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.reserve(bytes.len() * 5 + 2);
    buf.push(b'[');
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let (text, len) = &JAVA_BYTE_TEXT[usize::from(b)];
        buf.extend_from_slice(&text[..usize::from(*len)]);
    }
    buf.push(b']');
}

/// Appends `bytes` base64-encoded, as a JSON string, without an intermediate allocation.
/// `base64-simd` writes the same padded standard alphabet as [`ENCODER`](crate::base64_serde)
/// several times faster: this is most of the poller's work per record.
pub(crate) fn write_base64(buf: &mut Vec<u8>, bytes: &[u8]) {
    use base64_simd::AsOut;
    let start = buf.len() + 1;
    let encoded_len = base64_simd::STANDARD.encoded_length(bytes.len());
    buf.resize(start + encoded_len + 1, b'"');
    let written = base64_simd::STANDARD
        .encode(bytes, buf[start..start + encoded_len].as_out())
        .len();
    debug_assert_eq!(written, encoded_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let samples = [
            "plain",
            "quote\"back\\slash",
            "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "ünï/😀",
            "",
        ];
        // Long text with one escape at every place: in, between and after the 16-byte blocks
        // that are checked whole.
        let long = (0..50).flat_map(|at| {
            ["\"", "\\", "\n", "\u{1}", "é"].map(move |special| {
                let mut s = "abcdefghij".repeat(5);
                s.replace_range(at..=at, special);
                s
            })
        });
        for s in samples.map(str::to_owned).into_iter().chain(long) {
            let mut buf = Vec::new();
            write_str(&mut buf, &s);
            assert_eq!(buf, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn base64_is_written_in_place() {
        // Lengths around the SIMD encoder's block sizes, and a 1 KB value.
        for n in (0..100).chain([1023, 1024, 1025]) {
            let data: Vec<u8> = (0..n).map(|i: usize| (i as u8).wrapping_mul(37)).collect();
            let mut buf = b"x".to_vec();
            write_base64(&mut buf, &data);
            let expected = format!(
                "x\"{}\"",
                base64::Engine::encode(&crate::base64_serde::ENCODER, &data)
            );
            assert_eq!(String::from_utf8(buf).unwrap(), expected);
        }
    }

    #[test]
    fn java_bytes_are_signed() {
        let mut buf = Vec::new();
        write_java_bytes(&mut buf, &[0, 127, 128, 255]);
        assert_eq!(buf, b"[0,127,-128,-1]");
        let all: Vec<u8> = (0..=255).collect();
        let mut buf = Vec::new();
        write_java_bytes(&mut buf, &all);
        let expected: Vec<i8> = all.iter().map(|&b| b as i8).collect();
        assert_eq!(buf, serde_json::to_vec(&expected).unwrap());
    }
}
