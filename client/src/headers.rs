//! Record headers with their names as bytes, read and written without going through `&str`.
//!
//! Kafka's protocol makes a header name any bytes. rust-rdkafka 0.39 reads a name as `&str` and
//! unwraps the UTF-8 check (a record from a producer that wrote other bytes panics the reader),
//! and writes one only from a `&str`. These two functions call librdkafka directly instead; they
//! are the only `unsafe` code of the project.
#![allow(unsafe_code)]

use rdkafka::bindings as rd;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use std::ffi::{c_char, c_void};

/// The headers of `msg` in record order: each name's bytes and its value (`None` for a null
/// value). Never panics, whatever the bytes.
pub fn raw_headers<'m>(
    msg: &'m BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)> + 'm {
    let mut headers: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `msg.ptr()` is a live message for as long as `msg` is borrowed; librdkafka
    // writes the message's own headers list (or leaves it null) into `headers`, which the
    // message owns and keeps until it is destroyed, after the borrow ends.
    let found = unsafe { rd::rd_kafka_message_headers(msg.ptr(), &mut headers) };
    let count =
        if found == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && !headers.is_null() {
            // SAFETY: `headers` is the live list just returned.
            unsafe { rd::rd_kafka_header_cnt(headers) }
        } else {
            0
        };
    (0..count).filter_map(move |idx| {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `idx` is below the count of the live list `headers`; librdkafka points
        // `name` at a NUL-terminated copy of the name and `value` at `size` bytes (or null),
        // both owned by the list, which outlives `'m`.
        let got =
            unsafe { rd::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size) };
        if got != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        // SAFETY: see above; the name is NUL-terminated, the value `size` bytes long.
        // librdkafka returns no name length, so a name holding a NUL byte reads up to it.
        let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
        Some((name, value))
    })
}

/// `headers` with one more header whose name is any bytes. librdkafka copies both.
pub fn add_raw_header(headers: OwnedHeaders, name: &[u8], value: Option<&[u8]>) -> OwnedHeaders {
    let list = std::ptr::from_ref(headers.as_borrowed())
        .cast::<rd::rd_kafka_headers_t>()
        .cast_mut();
    let (value_ptr, value_len) = value.map_or((std::ptr::null(), 0), |v| {
        (v.as_ptr().cast::<c_void>(), v.len())
    });
    // SAFETY: `list` is the writable list `headers` owns (rdkafka's `OwnedHeaders::insert`
    // writes through the same pointer); the name and value are read for the given lengths and
    // copied before the call returns. Lengths above isize::MAX cannot exist for slices.
    let added = unsafe {
        rd::rd_kafka_header_add(
            list,
            name.as_ptr().cast::<c_char>(),
            name.len() as isize,
            value_ptr,
            value_len as isize,
        )
    };
    // librdkafka refuses only read-only lists (those of a message being sent), which an
    // `OwnedHeaders` never is.
    debug_assert_eq!(added, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    headers
}
