//! The registries' wire formats: the few bytes before a record's serialized data that say which
//! schema wrote it.
//!
//! - **Confluent** (and every Confluent-compatible registry: Apicurio's `ccompat` API, Redpanda,
//!   Karapace): byte `0`, then the schema id as a 4-byte big-endian integer, then the data. For
//!   Protobuf, the data starts with the *message indexes* ([`MessageIndexes`]): which message of
//!   the schema's file this is.
//! - **AWS Glue**: byte `3` (the header version), a compression byte (`0` none, `5` zlib), the
//!   16-byte schema version id (a UUID), then the data, zlib-compressed when the compression byte
//!   says so.
//!
//! Anything else is not written by a registry serializer: [`Framing::parse`] refuses it, naming
//! the first byte, so that a record produced without the registry is reported as such.

use std::borrow::Cow;
use std::fmt;
use uuid::Uuid;

/// The bytes before a record's data are not a registry's header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Zero bytes: nothing says which schema wrote them.
    #[error("the bytes are empty: no schema registry header")]
    Empty,
    /// The first byte is neither Confluent's magic byte (0) nor Glue's header version (3).
    #[error(
        "the first byte is {0:#04x}, not a schema registry header (0: Confluent, 3: AWS Glue); \
         was the record written without the registry's serializer?"
    )]
    UnknownMagic(u8),
    /// Fewer bytes than the header takes.
    #[error("{got} bytes are too few for a {format} header of {needed} bytes")]
    Truncated {
        /// `Confluent` or `AWS Glue`.
        format: &'static str,
        /// The header's length.
        needed: usize,
        /// The bytes there are.
        got: usize,
    },
    /// Glue's compression byte is neither 0 (none) nor 5 (zlib).
    #[error("AWS Glue compression byte {0} is unknown (0: none, 5: zlib)")]
    GlueCompression(u8),
    /// Glue's zlib data does not inflate.
    #[error("AWS Glue zlib data does not inflate: {0}")]
    Zlib(String),
    /// Protobuf message indexes that cannot be read.
    #[error("Protobuf message indexes are corrupt: {0}")]
    MessageIndexes(String),
}

/// Confluent's magic byte.
const CONFLUENT_MAGIC: u8 = 0;
/// Glue's header version byte.
const GLUE_HEADER_VERSION: u8 = 3;
/// Glue's compression byte for uncompressed data.
const GLUE_UNCOMPRESSED: u8 = 0;
/// Glue's compression byte for zlib.
const GLUE_ZLIB: u8 = 5;
/// Bytes before the data in Confluent's format.
pub const CONFLUENT_HEADER_LEN: usize = 5;
/// Bytes before the data in Glue's format.
pub const GLUE_HEADER_LEN: usize = 18;
/// Most message indexes a Protobuf record may name: a schema nests messages a few levels deep; a
/// count beyond this is corrupt data, not a schema.
const MAX_MESSAGE_INDEXES: usize = 64;
/// Largest inflated Glue payload: Kafka's own record limit is far below it, so more is a
/// decompression bomb, not a record.
const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// Which schema wrote a record: an id in the registry that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaId {
    /// A Confluent-compatible registry's global schema id.
    Confluent(u32),
    /// An AWS Glue schema version id.
    Glue(Uuid),
}

impl fmt::Display for SchemaId {
    /// The id as the Lambda event's `schemaId` carries it: the decimal number for Confluent, the
    /// hyphenated lowercase UUID for Glue.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaId::Confluent(id) => write!(f, "{id}"),
            SchemaId::Glue(id) => write!(f, "{}", id.hyphenated()),
        }
    }
}

/// A record's bytes split into the schema that wrote them and the serialized data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing<'a> {
    /// The schema that wrote the data.
    pub schema: SchemaId,
    /// The serialized data after the registry's header (inflated when Glue compressed it). For
    /// Protobuf it still starts with the message indexes (Confluent) or index (Glue): see
    /// [`MessageIndexes`].
    pub data: Cow<'a, [u8]>,
}

impl<'a> Framing<'a> {
    /// Splits `bytes`, a record's key or value, into the registry header and the data.
    ///
    /// # Errors
    /// The bytes are too short for the header their first byte announces, the first byte is no
    /// registry's, Glue's compression byte is unknown, or zlib data does not inflate.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        match bytes.first() {
            None => Err(WireError::Empty),
            Some(&CONFLUENT_MAGIC) => {
                let id = bytes
                    .get(1..CONFLUENT_HEADER_LEN)
                    .ok_or(WireError::Truncated {
                        format: "Confluent",
                        needed: CONFLUENT_HEADER_LEN,
                        got: bytes.len(),
                    })?;
                let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
                Ok(Framing {
                    schema: SchemaId::Confluent(id),
                    data: Cow::Borrowed(&bytes[CONFLUENT_HEADER_LEN..]),
                })
            }
            Some(&GLUE_HEADER_VERSION) => {
                if bytes.len() < GLUE_HEADER_LEN {
                    return Err(WireError::Truncated {
                        format: "AWS Glue",
                        needed: GLUE_HEADER_LEN,
                        got: bytes.len(),
                    });
                }
                let mut id = [0u8; 16];
                id.copy_from_slice(&bytes[2..GLUE_HEADER_LEN]);
                let schema = SchemaId::Glue(Uuid::from_bytes(id));
                let data = &bytes[GLUE_HEADER_LEN..];
                let data = match bytes[1] {
                    GLUE_UNCOMPRESSED => Cow::Borrowed(data),
                    GLUE_ZLIB => Cow::Owned(inflate(data)?),
                    other => return Err(WireError::GlueCompression(other)),
                };
                Ok(Framing { schema, data })
            }
            Some(&other) => Err(WireError::UnknownMagic(other)),
        }
    }
}

/// Inflates Glue's zlib data, refusing more than [`MAX_INFLATED_BYTES`].
fn inflate(data: &[u8]) -> Result<Vec<u8>, WireError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(data.len() * 4);
    let read = flate2::read::ZlibDecoder::new(data)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| WireError::Zlib(e.to_string()))?;
    if read as u64 > MAX_INFLATED_BYTES {
        return Err(WireError::Zlib(format!(
            "inflates to more than {MAX_INFLATED_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Which message of a Protobuf schema a record is: indexes into the file's top-level messages,
/// then into that message's nested messages, and so on. `[0]` is the file's first message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MessageIndexes(pub Vec<usize>);

impl MessageIndexes {
    /// Reads Confluent's message indexes at the start of `data`: a count, then that many indexes,
    /// each a zigzag varint; the count `0` alone (one byte, `0`) stands for `[0]`. Returns the
    /// indexes and the message bytes after them.
    ///
    /// # Errors
    /// The varints run past the end, overflow, or count more than 64 indexes.
    pub fn read_confluent(data: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let mut at = 0;
        let count = zigzag(read_varint(data, &mut at)?);
        if count == 0 {
            return Ok((MessageIndexes(vec![0]), &data[at..]));
        }
        let count = usize::try_from(count)
            .ok()
            .filter(|c| *c <= MAX_MESSAGE_INDEXES)
            .ok_or(WireError::MessageIndexes(format!(
                "a count of {count} message indexes"
            )))?;
        let mut indexes = Vec::with_capacity(count);
        for _ in 0..count {
            let index = zigzag(read_varint(data, &mut at)?);
            let index = usize::try_from(index)
                .map_err(|_| WireError::MessageIndexes(format!("a message index of {index}")))?;
            indexes.push(index);
        }
        Ok((MessageIndexes(indexes), &data[at..]))
    }

    /// Reads AWS Glue's message index at the start of `data`: one unsigned varint
    /// (`ProtobufWireFormatEncoder`: `writeUInt32NoTag`), the message's place in Glue's
    /// numbering (see `protobuf::ProtobufSchema::glue_message`). Returns it and the message
    /// bytes after it.
    ///
    /// # Errors
    /// The varint runs past the end or overflows.
    pub fn read_glue(data: &[u8]) -> Result<(usize, &[u8]), WireError> {
        let mut at = 0;
        let index = read_varint(data, &mut at)?;
        let index = usize::try_from(index)
            .map_err(|_| WireError::MessageIndexes(format!("a message index of {index}")))?;
        Ok((index, &data[at..]))
    }

    /// Writes the indexes as Confluent's serializers do (`[0]` as the single byte `0`).
    pub fn write_confluent(&self, out: &mut Vec<u8>) {
        if self.0 == [0] {
            out.push(0);
            return;
        }
        write_varint(out, unzigzag(self.0.len() as i64));
        for index in &self.0 {
            write_varint(out, unzigzag(*index as i64));
        }
    }
}

impl fmt::Display for MessageIndexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Reads an unsigned LEB128 varint of at most 64 bits at `*at`, advancing it.
fn read_varint(data: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at).ok_or(WireError::MessageIndexes(
            "the message indexes run past the end of the data".to_owned(),
        ))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::MessageIndexes(
        "a varint longer than 64 bits".to_owned(),
    ))
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn unzigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_header_gives_the_id_and_the_data() {
        let bytes = [0, 0, 0, 1, 44, 2, 0x61];
        let f = Framing::parse(&bytes).unwrap();
        assert_eq!(f.schema, SchemaId::Confluent(300));
        assert_eq!(f.schema.to_string(), "300");
        assert_eq!(&*f.data, &[2, 0x61]);
    }

    #[test]
    fn glue_header_gives_the_version_id_and_inflates_zlib() {
        let id = Uuid::parse_str("b7b4a7f0-0c0a-4a1e-8b9c-1d2e3f405162").unwrap();
        let mut plain = vec![3, 0];
        plain.extend_from_slice(id.as_bytes());
        plain.extend_from_slice(b"data");
        let f = Framing::parse(&plain).unwrap();
        assert_eq!(f.schema, SchemaId::Glue(id));
        assert_eq!(f.schema.to_string(), "b7b4a7f0-0c0a-4a1e-8b9c-1d2e3f405162");
        assert_eq!(&*f.data, b"data");

        let mut zipped = vec![3, 5];
        zipped.extend_from_slice(id.as_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, b"compressed data").unwrap();
        zipped.extend(z.finish().unwrap());
        assert_eq!(&*Framing::parse(&zipped).unwrap().data, b"compressed data");
    }

    #[test]
    fn bytes_no_registry_wrote_are_refused_naming_why() {
        assert_eq!(Framing::parse(&[]), Err(WireError::Empty));
        assert_eq!(
            Framing::parse(b"{\"a\":1}"),
            Err(WireError::UnknownMagic(b'{'))
        );
        assert!(matches!(
            Framing::parse(&[0, 0, 1]),
            Err(WireError::Truncated {
                needed: 5,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            Framing::parse(&[3, 0, 1, 2]),
            Err(WireError::Truncated { needed: 18, .. })
        ));
        let mut bad = vec![3, 9];
        bad.extend_from_slice(&[0; 16]);
        assert_eq!(Framing::parse(&bad), Err(WireError::GlueCompression(9)));
        let mut not_zlib = vec![3, 5];
        not_zlib.extend_from_slice(&[0; 16]);
        not_zlib.extend_from_slice(b"not zlib");
        assert!(matches!(Framing::parse(&not_zlib), Err(WireError::Zlib(_))));
    }

    #[test]
    fn message_indexes_round_trip_and_zero_is_one_byte() {
        for indexes in [vec![0], vec![1], vec![0, 2], vec![3, 1, 4], vec![200]] {
            let mut out = Vec::new();
            MessageIndexes(indexes.clone()).write_confluent(&mut out);
            out.extend_from_slice(b"msg");
            let (read, rest) = MessageIndexes::read_confluent(&out).unwrap();
            assert_eq!(read.0, indexes);
            assert_eq!(rest, b"msg");
        }
        let mut out = Vec::new();
        MessageIndexes(vec![0]).write_confluent(&mut out);
        assert_eq!(out, [0]);
        // [1, 0] as Confluent writes it: count 2 (zigzag 4), 1 (zigzag 2), 0.
        assert_eq!(
            MessageIndexes::read_confluent(&[4, 2, 0, 9]).unwrap(),
            (MessageIndexes(vec![1, 0]), &[9u8][..])
        );
    }

    #[test]
    fn corrupt_message_indexes_are_refused() {
        assert!(MessageIndexes::read_confluent(&[]).is_err());
        assert!(MessageIndexes::read_confluent(&[4, 2]).is_err(), "runs out");
        assert!(
            MessageIndexes::read_confluent(&[0xff; 11]).is_err(),
            "overlong"
        );
        assert!(
            MessageIndexes::read_confluent(&[200, 1]).is_err(),
            "100 indexes"
        );
        assert!(MessageIndexes::read_confluent(&[2, 1]).is_err(), "negative");
    }
}
