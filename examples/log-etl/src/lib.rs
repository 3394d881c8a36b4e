//! The error-log cleaning of the `log-etl` function, shared with the functions that deliver the
//! cleaned documents somewhere (`es-etl` indexes them in Elasticsearch/OpenSearch).
//!
//! [`clean`] turns one raw [`ErrorLog`] into a [`CleanDocument`] (or `None` for a success, which
//! is dropped); [`Config`] reads the UTC offset the timestamps are written in.
//!
//! ```
//! use log_etl::{ErrorLog, clean, parse_utc_offset};
//!
//! let log: ErrorLog = serde_json::from_str(
//!     r#"{"timestamp":1595944295,"returnCode":101103,
//!         "returnMessage":"return has no deal return error[缺少参数][seqId:u3Becr8iz*]"}"#,
//! )?;
//! let document = clean(&log, parse_utc_offset("+08:00")?).expect("an error is kept");
//! assert_eq!(document.timestamp, "2020-07-28 21:51:35");
//! assert_eq!(document.return_message, "缺少参数");
//! assert_eq!(document.request_id, "u3Becr8iz*");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod etl;

pub use config::{Config, ConfigError, DEFAULT_UTC_OFFSET, UTC_OFFSET_VAR, parse_utc_offset};
pub use etl::{CleanDocument, ErrorLog, EtlResponse, clean, clean_batch, handle};
