//! Which of a node's named children an object key is, found while the key is read: the pruned
//! JSON readers of [`filter`](crate::filter) and [`template`](crate::template) keep only the
//! fields their paths name, and skip the rest without allocating their keys.

use serde::de::{self, DeserializeSeed, Visitor};
use std::fmt;

/// Reads an object key and answers its position among `children` (by name), or `None` for a
/// key no child has.
pub(crate) struct ChildKey<'t, T>(pub(crate) &'t [(Box<str>, T)]);

impl<'de, T> DeserializeSeed<'de> for ChildKey<'_, T> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<T> Visitor<'_> for ChildKey<'_, T> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, s: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(n, _)| **n == *s))
    }
}
