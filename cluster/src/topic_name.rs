//! Topic name validation, exactly as Kafka's `Topic.validate` does it.
//!
//! Names become folder names under the data dir, so this check is also what keeps a client
//! from writing outside it.

/// Kafka's limit: 249 leaves room for the `-<partition>` suffix within a 255-byte file name.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// Why a topic name was refused; handlers answer `INVALID_TOPIC_EXCEPTION` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be '.' or '..'")]
    Dots,
    #[error("topic name is {length} characters; the maximum is {TOPIC_NAME_LENGTH_MAX}")]
    TooLong { length: usize },
    #[error("topic name '{0}' has characters other than ASCII letters, digits, '.', '_' and '-'")]
    IllegalCharacter(String),
}

/// Checks `name` against Kafka's rules: `[a-zA-Z0-9._-]{1,249}`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(TopicNameError::TooLong { length: name.len() });
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if !name.bytes().all(legal) {
        return Err(TopicNameError::IllegalCharacter(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_legal_names_pass() {
        for name in [
            "a",
            "orders",
            "orders.eu_west-1",
            "__consumer_offsets",
            "A9",
        ] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
        assert_eq!(validate_topic_name(&"x".repeat(249)), Ok(()));
    }

    #[test]
    fn names_kafka_refuses_are_refused() {
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name("."), Err(TopicNameError::Dots));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert_eq!(
            validate_topic_name(&"x".repeat(250)),
            Err(TopicNameError::TooLong { length: 250 })
        );
        for name in ["a/b", "a b", "../etc", "tópico", "a\0b", "a:b"] {
            assert!(validate_topic_name(name).is_err(), "{name}");
        }
    }
}
