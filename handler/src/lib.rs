//! Handler SDK (being written).
