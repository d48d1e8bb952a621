//! How results look: aligned tables, human sizes, and the JSON encoding of record bytes.

use std::io::Write;

use serde_json::{Value, json};

use super::error::CliError;

/// Which way a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// For numbers, so digits of equal weight line up.
    Right,
}

/// A table printed with columns padded to their widest cell, two spaces apart, as
/// `kafka-topics` and `kafka-consumer-groups` print theirs.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row after the header, each ending in a newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (index, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = cells.get(index).map_or("", String::as_str);
                let pad = width.saturating_sub(cell.chars().count());
                if index > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout; a closed pipe is [`CliError::BrokenPipe`], not a failure.
pub fn print_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Writes a JSON document to stdout, pretty-printed, with a final newline.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("encoding JSON output: {e}")))?;
    print_stdout(&format!("{text}\n"))
}

/// `1.5 MiB` for a byte count: binary units, one decimal above KiB, as `ls -lh` rounds.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `7 d`, `1 h 30 min`, `250 ms`: a duration in ms, in the largest units that divide it.
pub fn human_duration_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
        (1, "ms"),
    ];
    if ms == 0 {
        return "0 ms".into();
    }
    let mut rest = ms;
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        if rest >= size {
            parts.push(format!("{} {name}", rest / size));
            rest %= size;
        }
    }
    parts.join(" ")
}

/// A config value with a human reading appended where the key says what unit it is in:
/// `1073741824 (1 GiB)` for `*.bytes`, `604800000 (7 d)` for `*.ms`.
pub fn config_value_display(name: &str, value: &str) -> String {
    let Ok(number) = value.parse::<u64>() else {
        return value.to_string();
    };
    if name.ends_with(".bytes") && number >= 1024 {
        format!("{value} ({})", human_bytes(number))
    } else if name.ends_with(".ms") && number >= 1_000 {
        format!("{value} ({})", human_duration_ms(number))
    } else {
        value.to_string()
    }
}

/// Record bytes in JSON output: a string when they are valid UTF-8 (the common case, and
/// readable as is), `{"base64": "…"}` otherwise, so no byte is lost; `null` when absent.
pub fn json_bytes(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => json!({ "base64": base64(bytes) }),
        },
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Bytes for one-line human output: lossy UTF-8 with backslash, newlines and other control
/// characters escaped, so one record stays one line.
pub fn escaped_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_numbers() {
        let mut table = Table::new(&[("NAME", Align::Left), ("PARTITIONS", Align::Right)]);
        table.row(vec!["orders".into(), "3".into()]);
        table.row(vec!["a".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "NAME    PARTITIONS\norders           3\na               12\n"
        );
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_073_741_824), "1 GiB");
        assert_eq!(human_duration_ms(604_800_000), "7 d");
        assert_eq!(human_duration_ms(5_400_000), "1 h 30 min");
        assert_eq!(
            config_value_display("segment.bytes", "1073741824"),
            "1073741824 (1 GiB)"
        );
        assert_eq!(config_value_display("retention.ms", "-1"), "-1");
        assert_eq!(config_value_display("cleanup.policy", "delete"), "delete");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(json_bytes(Some(b"hi")), json!("hi"));
        assert_eq!(json_bytes(Some(&[0xff, 0x00])), json!({ "base64": "/wA=" }));
        assert_eq!(json_bytes(None), Value::Null);
    }

    #[test]
    fn escaped_text_keeps_one_record_on_one_line() {
        assert_eq!(escaped_text(b"a\nb\\c\x01"), "a\\nb\\\\c\\u{1}");
    }
}
