//! Poller (being written).
