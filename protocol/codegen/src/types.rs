//! How spec types map to Rust: type names, default values, version conditions.

use serde_json::Value;

use crate::model::{Field, Message, Prim, Ty, Versions};

/// Whether something holds at a version, decided at generation time where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Always,
    Never,
    When(String),
}

impl Cond {
    /// The condition as a Rust boolean expression.
    pub fn expr(&self) -> String {
        match self {
            Cond::Always => "true".into(),
            Cond::Never => "false".into(),
            Cond::When(c) => c.clone(),
        }
    }
}

/// The condition "version is in `versions`", simplified against the message's valid range.
pub fn cond(msg: &Message, versions: Versions) -> Cond {
    let v = versions.intersect(msg.valid);
    if v.is_empty() {
        return Cond::Never;
    }
    if v.contains_all(msg.valid) && msg.valid.contains_all(v) {
        return Cond::Always;
    }
    if v.lo == v.hi {
        return Cond::When(format!("version == {}", v.lo));
    }
    if v.hi == msg.valid.hi {
        return Cond::When(format!("version >= {}", v.lo));
    }
    if v.lo == msg.valid.lo {
        return Cond::When(format!("version <= {}", v.hi));
    }
    Cond::When(format!("({}..={}).contains(&version)", v.lo, v.hi))
}

/// The condition "version is in `subset`", knowing the version is already in `within`
/// (e.g. a field's nullable versions, evaluated only where the field exists).
pub fn cond_within(msg: &Message, subset: Versions, within: Versions) -> Cond {
    let scope = within.intersect(msg.valid);
    let inside = subset.intersect(scope);
    if inside.is_empty() {
        Cond::Never
    } else if inside == scope {
        Cond::Always
    } else {
        cond(msg, inside)
    }
}

/// The Rust type of a value of `ty` (without the `Option` nullability adds).
pub fn base_type(ty: &Ty) -> String {
    match ty {
        Ty::Prim(p) => match p {
            Prim::Bool => "bool",
            Prim::Int8 => "i8",
            Prim::Int16 => "i16",
            Prim::Uint16 => "u16",
            Prim::Int32 => "i32",
            Prim::Uint32 => "u32",
            Prim::Int64 => "i64",
            Prim::Float64 => "f64",
            Prim::String => "String",
            Prim::Bytes | Prim::Records => "Bytes",
            Prim::Uuid => "Uuid",
        }
        .to_string(),
        Ty::Array(inner) => format!("Vec<{}>", base_type(inner)),
        Ty::Struct(name) => name.clone(),
    }
}

/// The Rust type of a field.
pub fn field_type(field: &Field) -> String {
    let base = base_type(&field.ty);
    if field.is_option() {
        format!("Option<{base}>")
    } else {
        base
    }
}

fn default_text(field: &Field) -> Option<String> {
    match &field.default {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => Some(other.to_string()),
    }
}

fn parse_int(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16)
    } else {
        digits.parse::<i64>()
    }
    .map_err(|e| format!("bad integer default {text:?}: {e}"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// The Rust expression for a field's default value.
pub fn default_expr(field: &Field) -> Result<String, String> {
    let text = default_text(field);
    if matches!(field.ty, Ty::Prim(Prim::Records)) {
        return Ok("None".into());
    }
    if field.is_option() && text.as_deref() == Some("null") {
        return Ok("None".into());
    }
    let inner = match &field.ty {
        Ty::Prim(p) => match p {
            Prim::Bool => match text.as_deref() {
                Some("true") => "true".to_string(),
                None | Some("false") => "false".to_string(),
                Some(other) => {
                    return Err(format!("{}: bad bool default {other}", field.spec_name));
                }
            },
            Prim::Int8 | Prim::Int16 | Prim::Uint16 | Prim::Int32 | Prim::Uint32 | Prim::Int64 => {
                match text.as_deref() {
                    None => "0".to_string(),
                    Some(t) => parse_int(t)?.to_string(),
                }
            }
            Prim::Float64 => match text.as_deref() {
                None => "0.0".to_string(),
                Some(t) => {
                    let v: f64 = t
                        .parse()
                        .map_err(|e| format!("{}: bad float default: {e}", field.spec_name))?;
                    format!("{v:?}")
                }
            },
            Prim::String => match text.as_deref() {
                None | Some("") => "String::new()".to_string(),
                Some("null") => {
                    return Err(format!(
                        "{}: null default on non-nullable string",
                        field.spec_name
                    ));
                }
                Some(t) => format!("String::from({t:?})"),
            },
            Prim::Bytes | Prim::Records => "Bytes::new()".to_string(),
            Prim::Uuid => "Uuid::ZERO".to_string(),
        },
        Ty::Array(_) => "Vec::new()".to_string(),
        Ty::Struct(name) => format!("{name}::default()"),
    };
    if field.is_option() {
        Ok(format!("Some({inner})"))
    } else {
        Ok(inner)
    }
}

/// A Rust boolean expression: "`value` differs from the field's default".
pub fn non_default_expr(field: &Field, value: &str) -> Result<String, String> {
    let default = default_expr(field)?;
    Ok(match default.as_str() {
        "None" => format!("{value}.is_some()"),
        "false" => value.to_string(),
        "true" => format!("!{value}"),
        "Vec::new()" | "String::new()" | "Bytes::new()" => format!("!{value}.is_empty()"),
        _ => format!("{value} != {default}"),
    })
}

/// The `"Struct.field"` label that names a field in errors.
pub fn label(struct_name: &str, field: &Field) -> String {
    format!(
        "\"{}.{}\"",
        struct_name,
        field.rust_name.trim_start_matches("r#")
    )
}

/// Fewest bytes a value of `ty` occupies, as a lower bound for array-count checks.
pub fn size_bytes_min(msg: &Message, ty: &Ty) -> usize {
    match ty {
        Ty::Prim(p) => p.size_bytes_min(),
        Ty::Array(_) => 1,
        Ty::Struct(name) => {
            let Some(s) = msg.find_struct(name) else {
                return 1;
            };
            let total: usize = s
                .fields
                .iter()
                .filter(|f| f.tag.is_none() && f.versions.contains_all(msg.valid))
                .map(|f| {
                    if f.is_option() {
                        1
                    } else {
                        size_bytes_min(msg, &f.ty)
                    }
                })
                .sum();
            total.max(1)
        }
    }
}
