//! Shared helpers for integration tests (being written).
