//! Any input either fails to parse with an error, or parses into an event that the streaming
//! writer encodes exactly as `serde_json` does and that parses back equal.
#![no_main]

use kafka_lambda_events::{KafkaBatchResponse, KafkaEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = KafkaEvent::from_slice(data) {
        let written = event.to_vec();
        assert_eq!(written.len(), event.serialized_len());
        let via_serde = serde_json::to_vec(&event).expect("an event always serializes");
        assert_eq!(written, via_serde, "the writer and serde_json disagree");
        let reparsed = KafkaEvent::from_slice(&written).expect("written events parse");
        assert_eq!(reparsed, event, "the round trip changed the event");
    }
    // The response parser sees untrusted function output: it must not panic either.
    let _ = KafkaBatchResponse::from_payload(data);
});
