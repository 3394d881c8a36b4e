//! Kafka's rule for topic names, shared by every configuration that names a topic.

/// The rule, for error messages: what [`is_topic_name`] accepts.
pub const TOPIC_NAME_RULE: &str = "1-249 of [a-zA-Z0-9._-], not `.` or `..`";

/// Whether `name` is a legal Kafka topic name (the broker's `Topic.validate`): 1 to 249 ASCII
/// letters, digits, `.`, `_` and `-`, and not `.` or `..`.
pub fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name != "."
        && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rule() {
        for good in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(is_topic_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a b", "ä", "a/b", &"x".repeat(250)] {
            assert!(!is_topic_name(bad), "{bad}");
        }
    }
}
