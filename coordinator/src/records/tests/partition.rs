//! `partition_for` agrees with Kafka's `Utils.abs(groupId.hashCode()) % n`.

use super::*;

#[test]
fn partition_matches_java_hash_code_and_kafka_abs() {
    // Java: "".hashCode()==0, "a"==97, "hello"==99162322, "console-consumer-1234"==836395459.
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash("console-consumer-1234"), 836_395_459);
    assert_eq!(partition_for("a", 50), 47);
    assert_eq!(partition_for("hello", 50), 22);
    assert_eq!(partition_for("console-consumer-1234", 50), 9);
    // 'é' is one UTF-16 unit (233); an emoji is a surrogate pair 0xD83D 0xDE00:
    // 0xD83D * 31 + 0xDE00 = 1772899, not the code point 0x1F600.
    assert_eq!(java_string_hash("é"), 233);
    assert_eq!(java_string_hash("😀"), 1_772_899);
    assert_eq!(partition_for("😀", 50), 49);
    assert_eq!(partition_for("grüße-gruppe", 50), 5);
}

#[test]
fn negative_hashes_use_math_abs_not_a_bit_mask() {
    // "my-group".hashCode() == -1906497762: Utils.abs gives 1906497762 % 50 == 12, where
    // masking with 0x7fffffff would give 36.
    assert_eq!(java_string_hash("my-group"), -1_906_497_762);
    assert_eq!(partition_for("my-group", 50), 12);
}

#[test]
fn the_one_hash_without_an_absolute_value_maps_to_partition_zero() {
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs maps it to 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("polygenelubricants", 7), 0);
}

#[test]
fn no_partitions_means_partition_zero() {
    assert_eq!(partition_for("hello", 0), 0);
    assert_eq!(partition_for("hello", -3), 0);
    assert_eq!(partition_for("hello", 1), 0);
}
