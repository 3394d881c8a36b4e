//! The record's key or value as the patterns see it, read once per record.
//!
//! A JSON object is parsed *pruned*: the union of every field path the patterns name is kept in a
//! [`Trie`], and only those fields become [`Node`]s; everything else is skipped by the tokenizer
//! without being built. Strings without escapes borrow from the record's bytes, and so does the
//! text of the numbers that exact number rules compare (`300` is not `300.0`).

use super::rule::{Leaf, Num};
use crate::object_key::ChildKey;
use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The field paths the patterns read below `value` (or `key`).
#[derive(Debug, Clone, Default)]
pub(super) struct Trie {
    /// Named fields read below this point, in the order patterns first named them.
    pub(super) children: Vec<(Box<str>, Trie)>,
    /// Whether a rule list is applied right here (so scalars must be kept).
    pub(super) leaves: bool,
    /// Whether an exact number rule is applied right here (so numbers keep their text).
    pub(super) numbers: bool,
}

impl Trie {
    /// The index of the child called `name`, added if new.
    pub(super) fn child(&mut self, name: &str) -> usize {
        match self.children.iter().position(|(n, _)| **n == *name) {
            Some(i) => i,
            None => {
                self.children.push((name.into(), Trie::default()));
                self.children.len() - 1
            }
        }
    }

    /// Whether any pattern reads this part of the record.
    pub(super) fn is_read(&self) -> bool {
        self.leaves || !self.children.is_empty()
    }
}

/// A pruned JSON value. [`Node::Skip`] stands for anything the patterns cannot see (a missing
/// field, an unread scalar, an object none of whose read fields are present): to every rule it
/// is the same as a missing field, so one variant serves both.
#[derive(Debug)]
pub(super) enum Node<'a> {
    Skip,
    Null,
    Bool(bool),
    /// A number, with its text where an exact number rule reads it.
    Num(Num, Option<&'a str>),
    Str(Cow<'a, str>),
    /// Elements in order; at least one is not `Skip` (else the array is `Skip`).
    Arr(Vec<Node<'a>>),
    /// Indexed like the trie node's `children`; absent fields are `Skip`.
    Obj(Vec<Node<'a>>),
}

impl<'a> Node<'a> {
    /// Calls `f` on every scalar here, looking through arrays (EventBridge matches a rule against
    /// any element of an array), until `f` returns true.
    pub(super) fn any_leaf(&self, f: &mut impl FnMut(Leaf<'_>) -> bool) -> bool {
        match self {
            Node::Skip | Node::Obj(_) => false,
            Node::Null => f(Leaf::Null),
            Node::Bool(b) => f(Leaf::Bool(*b)),
            Node::Num(n, text) => f(Leaf::Num(*n, *text)),
            Node::Str(s) => f(Leaf::Str(s)),
            Node::Arr(items) => items.iter().any(|n| n.any_leaf(f)),
        }
    }
}

/// What a record's key or value is to the patterns.
#[derive(Debug)]
pub(super) enum Subject<'a> {
    /// No bytes: a null key or a tombstone.
    Absent,
    /// Valid UTF-8 that is not a JSON object: matched as one plain string.
    Text(&'a str),
    /// A JSON object, pruned to the fields the patterns read.
    Json(Node<'a>),
    /// Neither a JSON object nor UTF-8.
    Binary,
}

#[cfg(test)]
thread_local! {
    /// How many times a key or value was examined, so tests can check "at most once per record".
    pub(super) static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Classifies (and, for a JSON object, parses) a key or value.
pub(super) fn read<'a>(bytes: Option<&'a [u8]>, trie: &Trie) -> Subject<'a> {
    #[cfg(test)]
    READS.with(|r| r.set(r.get() + 1));
    let Some(bytes) = bytes else {
        return Subject::Absent;
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        if let Ok(node) = Seed::new(trie).deserialize(&mut de)
            && de.end().is_ok()
        {
            return Subject::Json(node);
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Subject::Text(s),
        Err(_) => Subject::Binary,
    }
}

/// Deserializes the value at one trie node.
#[derive(Clone, Copy)]
struct Seed<'t> {
    trie: &'t Trie,
    /// Whether the value is read from its raw text (taken to keep the text of numbers).
    raw: bool,
}

impl<'t> Seed<'t> {
    fn new(trie: &'t Trie) -> Self {
        Seed { trie, raw: false }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Node<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        if self.trie.numbers && !self.raw {
            // serde_json hands the value over as its text (borrowed from the record): a number
            // is kept as written, anything else is read from that text.
            let text = <&'de RawValue>::deserialize(d)?.get();
            return self.read_raw(text).map_err(de::Error::custom);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Seed<'_> {
    fn leaf(self, node: Node<'de>) -> Node<'de> {
        if self.trie.leaves { node } else { Node::Skip }
    }

    /// A value given as its JSON text.
    fn read_raw(self, text: &'de str) -> Result<Node<'de>, serde_json::Error> {
        if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
            return Ok(self.leaf(Node::Num(Num::of_text(text), Some(text))));
        }
        if let Some(s) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
            && !s.contains('\\')
        {
            return Ok(self.leaf(Node::Str(Cow::Borrowed(s))));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        Seed {
            trie: self.trie,
            raw: true,
        }
        .deserialize(&mut de)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Bool(b)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Num(Num::U(n), None)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Num(Num::of_i64(n), None)))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Num(Num::F(n), None)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(self.leaf(Node::Str(Cow::Borrowed(s))))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        if self.trie.leaves {
            Ok(Node::Str(Cow::Owned(s.to_owned())))
        } else {
            Ok(Node::Skip)
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        let mut seen = false;
        // Each element is a value of this node (taken raw again, if numbers keep their text).
        while let Some(node) = seq.next_element_seed(Seed::new(self.trie))? {
            seen |= !matches!(node, Node::Skip);
            items.push(node);
        }
        // Skipped elements are kept beside seen ones: inside an object pattern each element is
        // one alternative, and an element without the field still satisfies `exists: false`.
        Ok(if seen { Node::Arr(items) } else { Node::Skip })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut fields: Vec<Node<'de>> = Vec::new();
        while let Some(found) = map.next_key_seed(ChildKey(&self.trie.children))? {
            match found {
                Some(i) => {
                    let node = map.next_value_seed(Seed::new(&self.trie.children[i].1))?;
                    if fields.is_empty() {
                        if matches!(node, Node::Skip) {
                            continue;
                        }
                        fields.resize_with(self.trie.children.len(), || Node::Skip);
                    }
                    // A repeated key: the last one wins, as in serde_json and AWS.
                    fields[i] = node;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(if fields.is_empty() {
            Node::Skip
        } else {
            Node::Obj(fields)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&[&str]]) -> Trie {
        let mut t = Trie::default();
        for path in paths {
            let mut at = &mut t;
            for name in *path {
                let i = at.child(name);
                at = &mut at.children[i].1;
            }
            at.leaves = true;
        }
        t
    }

    #[test]
    fn only_read_fields_are_kept() {
        let t = trie(&[&["a"], &["b", "c"]]);
        let Subject::Json(Node::Obj(fields)) = read(
            Some(br#"{"x": {"big": [1,2,3]}, "a": "hi", "b": {"c": 1, "d": 2}}"#),
            &t,
        ) else {
            panic!("expected an object");
        };
        assert!(matches!(&fields[0], Node::Str(Cow::Borrowed("hi"))));
        let Node::Obj(b) = &fields[1] else {
            panic!("expected b to be kept")
        };
        assert!(matches!(b[0], Node::Num(Num::U(1), None)));
    }

    #[test]
    fn objects_without_read_fields_are_skipped() {
        let t = trie(&[&["a"]]);
        assert!(matches!(
            read(Some(br#"{"x": 1}"#), &t),
            Subject::Json(Node::Skip)
        ));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let t = trie(&[&["a"]]);
        let Subject::Json(Node::Obj(fields)) = read(Some(br#"{"a": "line\nbreak"}"#), &t) else {
            panic!("expected an object");
        };
        assert!(matches!(&fields[0], Node::Str(s) if s == "line\nbreak"));
    }

    #[test]
    fn numbers_keep_their_text_where_exact_rules_read_them() {
        let mut t = trie(&[&["n"], &["m"]]);
        t.children[0].1.numbers = true;
        let Subject::Json(Node::Obj(fields)) = read(
            Some(br#"{"n": [3.0e2, "s", {"x": 1}, -0], "m": 3.0e2}"#),
            &t,
        ) else {
            panic!("expected an object");
        };
        let Node::Arr(items) = &fields[0] else {
            panic!("expected n to be a list")
        };
        assert!(matches!(items[0], Node::Num(Num::F(x), Some("3.0e2")) if x == 300.0));
        assert!(matches!(&items[1], Node::Str(Cow::Borrowed("s"))));
        assert!(matches!(items[2], Node::Skip));
        assert!(matches!(items[3], Node::Num(Num::U(0), Some("-0"))));
        assert!(matches!(fields[1], Node::Num(Num::F(_), None)));
    }

    #[test]
    fn repeated_keys_keep_the_last() {
        let t = trie(&[&["a"]]);
        let Subject::Json(Node::Obj(fields)) = read(Some(br#"{"a": 1, "a": 2}"#), &t) else {
            panic!("expected an object");
        };
        assert!(matches!(fields[0], Node::Num(Num::U(2), None)));
    }

    #[test]
    fn non_objects_are_text_or_binary() {
        let t = trie(&[&["a"]]);
        assert!(matches!(read(Some(b"[1, 2]"), &t), Subject::Text("[1, 2]")));
        assert!(matches!(
            read(Some(b"{broken"), &t),
            Subject::Text("{broken")
        ));
        assert!(matches!(read(Some(b"{} trailing"), &t), Subject::Text(_)));
        assert!(matches!(read(Some(b"\xff\xfe"), &t), Subject::Binary));
        assert!(matches!(read(None, &t), Subject::Absent));
        assert!(matches!(read(Some(b"  {}"), &t), Subject::Json(Node::Skip)));
    }
}
