//! Reading Kafka's message spec files: JSON with `//` line comments.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// One `*.json` spec file, as Kafka's generator reads it (only the keys we use).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSpec {
    pub api_key: Option<i16>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub valid_versions: String,
    #[serde(default)]
    pub flexible_versions: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub common_structs: Vec<StructSpec>,
    #[serde(default)]
    pub latest_version_unstable: bool,
}

/// A struct declared once in `commonStructs` and referenced by type name.
#[derive(Debug, Clone, Deserialize)]
pub struct StructSpec {
    pub name: String,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// One field of a message or struct.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub versions: Option<String>,
    #[serde(default)]
    pub nullable_versions: Option<String>,
    #[serde(default)]
    pub tagged_versions: Option<String>,
    /// A number, though some specs write it as a string (`"tag": "0"`).
    #[serde(default)]
    pub tag: Option<Value>,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub ignorable: bool,
    #[serde(default)]
    pub fields: Option<Vec<FieldSpec>>,
    #[serde(default)]
    pub about: Option<String>,
    #[serde(default)]
    pub flexible_versions: Option<String>,
}

/// Removes `//` comments outside string literals; Kafka's specs are JSON plus such comments.
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            for skipped in chars.by_ref() {
                if skipped == '\n' {
                    out.push('\n');
                    break;
                }
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

/// Parses one spec file. Goes through `Value` first because some Kafka specs repeat a key
/// (`versions` twice in one field), which JSON allows (last wins) but serde's derive rejects.
pub fn load(path: &Path) -> Result<MessageSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&strip_comments(&text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_stripped_but_slashes_in_strings_survive() {
        let text = "// head\n{ \"a\": \"x//y\", // tail\n \"b\": \"q\\\"//\" }";
        let value: Value = serde_json::from_str(&strip_comments(text)).unwrap();
        assert_eq!(value["a"], "x//y");
        assert_eq!(value["b"], "q\"//");
    }
}
