//! Reading an event: a fast parser for the event as AWS (and the poller) writes it, and serde
//! with the offending field's path for anything else.

mod fast;

use crate::error::EventParseError;
use crate::event::KafkaEvent;

impl KafkaEvent {
    /// Parses an event from JSON bytes; the error names the path of the offending field.
    pub fn from_slice(json: &[u8]) -> Result<Self, EventParseError> {
        if let Some(event) = fast::parse(json) {
            return Ok(event);
        }
        crate::error::from_slice_with_path(json)
            .map_err(|(path, source)| EventParseError { path, source })
    }
}
