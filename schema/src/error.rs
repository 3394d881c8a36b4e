//! What can go wrong, split the way a consumer must act on it: a record that cannot be decoded
//! is that record's failure ([`DecodeError`], with the ESM's error type); a registry that cannot
//! be reached is nobody's record failure ([`RegistryError::is_unavailable`]): wait and ask again.

use crate::wire::{SchemaId, WireError};

/// Why a registry did not give a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered that it has no such schema.
    #[error("schema {id} is not in the registry ({registry})")]
    NotFound {
        /// The schema asked for.
        id: SchemaId,
        /// The registry, as configured (no credentials).
        registry: String,
    },
    /// The registry could not be reached, timed out, or answered with a server error or a
    /// throttle: asking again later may succeed.
    #[error("the schema registry {registry} is unavailable: {reason}")]
    Unavailable {
        /// The registry, as configured (no credentials).
        registry: String,
        /// What happened.
        reason: String,
    },
    /// The registry refused the request (authentication, permissions, a bad request): asking
    /// again will not help until the configuration changes.
    #[error("the schema registry {registry} refused the request: {reason}")]
    Refused {
        /// The registry, as configured (no credentials).
        registry: String,
        /// Its answer.
        reason: String,
    },
    /// The schema was given but is not usable: unparseable, of a format this build does not
    /// decode, or referencing schemas that cannot be had.
    #[error("schema {id} cannot be used: {reason}")]
    Unusable {
        /// The schema.
        id: SchemaId,
        /// Why.
        reason: String,
    },
    /// A schema id of another registry kind than the one configured (a Glue header read with
    /// a Confluent registry, say).
    #[error("schema {id} is a {kind} id, but the registry {registry} is not")]
    WrongRegistry {
        /// The schema.
        id: SchemaId,
        /// `Confluent` or `AWS Glue`.
        kind: &'static str,
        /// The registry configured.
        registry: String,
    },
}

impl RegistryError {
    /// Whether the registry could not be asked at all (down, slow, throttling): not the record's
    /// fault, so a consumer waits and asks again instead of failing the record.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }

    /// Whether the registry, not the record, is at fault: it cannot be asked
    /// ([`is_unavailable`](Self::is_unavailable)), or it refuses the requests (credentials,
    /// permissions), which no record can fix and failing records for would lose them all. A
    /// consumer waits (or fails the invocation, to be retried) instead of failing the record.
    pub fn is_registry_fault(&self) -> bool {
        matches!(
            self,
            RegistryError::Unavailable { .. } | RegistryError::Refused { .. }
        )
    }
}

/// Why a record's key or value was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes carry no registry header that can be read.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The schema could not be had or used.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The data does not decode with its schema (or, for JSON Schema, is not valid against it).
    #[error("the data does not decode with schema {id}: {reason}")]
    Data {
        /// The schema the header names.
        id: SchemaId,
        /// What the decoder said.
        reason: String,
    },
}

/// The error type Lambda's event source mapping names when a schema does not exist.
pub const SCHEMA_NOT_FOUND: &str = "SCHEMA_NOT_FOUND";
/// The error type Lambda's event source mapping names when a record does not decode.
pub const DESERIALIZATION_ERROR: &str = "DESERIALIZATION_ERROR";

impl DecodeError {
    /// The error type a failed record is reported (and dead-lettered) with: `SCHEMA_NOT_FOUND`
    /// when the registry has no schema of that id, `DESERIALIZATION_ERROR` otherwise.
    pub fn error_type(&self) -> &'static str {
        match self {
            DecodeError::Registry(RegistryError::NotFound { .. }) => SCHEMA_NOT_FOUND,
            _ => DESERIALIZATION_ERROR,
        }
    }

    /// Whether this is not the record's failure but the registry's absence: see
    /// [`RegistryError::is_unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DecodeError::Registry(e) if e.is_unavailable())
    }

    /// Whether this is not the record's failure but the registry's: see
    /// [`RegistryError::is_registry_fault`].
    pub fn is_registry_fault(&self) -> bool {
        matches!(self, DecodeError::Registry(e) if e.is_registry_fault())
    }
}
