//! The records every benchmark uses: error-log entries as `log-etl` reads them, padded to about
//! 1 KB, with a key and the headers a traced producer adds.

use serde::Deserialize;

/// Size of one record value in bytes.
pub(crate) const VALUE_BYTES: usize = 1024;

/// Partitions of every benchmark topic.
pub(crate) const PARTITIONS: i32 = 4;

/// Filler that pads `returnMessage`: ASCII without JSON escapes, so the size is exact.
const STACK_LINE: &str = " at com.example.trade.OrderService.submit(OrderService.java:217)";

/// The value of error-log entry `event_id`: the shape `log-etl` cleans, `VALUE_BYTES` long.
pub(crate) fn value(event_id: u64, timestamp_s: i64) -> Vec<u8> {
    let head = format!(
        r#"{{"version":1,"componentName":"trade","timestamp":{timestamp_s},"eventId":{event_id},"returnValue":-1,"returnCode":101103,"returnMessage":"return has no deal return error[错误: 缺少 **c 参数][seqId:u3Becr8iz*]"#
    );
    let tail = r#"","data":[],"seqId":"u3Becr8iz*"}"#;
    let mut out = Vec::with_capacity(VALUE_BYTES);
    out.extend_from_slice(head.as_bytes());
    let pad = VALUE_BYTES.saturating_sub(head.len() + tail.len());
    out.extend(STACK_LINE.bytes().cycle().take(pad));
    out.extend_from_slice(tail.as_bytes());
    out
}

/// The key of entry `event_id`.
pub(crate) fn key(event_id: u64) -> Vec<u8> {
    format!("trade-{}", event_id % 1000).into_bytes()
}

/// The headers of entry `event_id`: a W3C `traceparent` and the producing component.
pub(crate) fn headers(event_id: u64) -> [(&'static str, Vec<u8>); 2] {
    let trace = event_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    [
        (
            "traceparent",
            format!("00-{trace:016x}{event_id:016x}-{trace:016x}-01").into_bytes(),
        ),
        ("source", b"trade".to_vec()),
    ]
}

/// One error-log entry with every field typed: what a function decodes each value into.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorLog {
    version: u32,
    component_name: String,
    timestamp: i64,
    event_id: u64,
    return_value: i64,
    return_code: i64,
    return_message: String,
    data: Vec<serde_json::Value>,
    seq_id: String,
}

impl ErrorLog {
    /// A number that depends on every field, so the decoding cannot be optimized away.
    pub(crate) fn checksum(&self) -> u64 {
        u64::from(self.version)
            ^ self.component_name.len() as u64
            ^ self.timestamp as u64
            ^ self.event_id
            ^ self.return_value as u64
            ^ self.return_code as u64
            ^ self.return_message.len() as u64
            ^ self.data.len() as u64
            ^ self.seq_id.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_exactly_one_kilobyte_of_valid_error_logs() {
        for id in [0, 7, 9_999_999_999] {
            let v = value(id, 1_595_944_295);
            assert_eq!(v.len(), VALUE_BYTES);
            let log: ErrorLog = serde_json::from_slice(&v).unwrap();
            assert_eq!(log.event_id, id);
            assert_eq!(log.return_code, 101_103);
        }
    }
}
