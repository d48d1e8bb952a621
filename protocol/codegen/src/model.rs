//! The resolved model the emitters work from: versions parsed, types resolved, structs
//! collected per message.

use heck::ToSnakeCase;
use serde_json::Value;

use crate::spec::{FieldSpec, MessageSpec};

/// An inclusive version range; empty when `lo > hi` ("none").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { lo: 1, hi: 0 };

    /// Parses Kafka's `"3+"`, `"1-4"`, `"2"` and `"none"` forms.
    pub fn parse(text: &str) -> Result<Versions, String> {
        let text = text.trim();
        let number = |s: &str| {
            s.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {text:?}: {e}"))
        };
        if text == "none" || text.is_empty() {
            Ok(Versions::NONE)
        } else if let Some(lo) = text.strip_suffix('+') {
            Ok(Versions {
                lo: number(lo)?,
                hi: i16::MAX,
            })
        } else if let Some((lo, hi)) = text.split_once('-') {
            Ok(Versions {
                lo: number(lo)?,
                hi: number(hi)?,
            })
        } else {
            let v = number(text)?;
            Ok(Versions { lo: v, hi: v })
        }
    }

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub fn intersect(self, other: Versions) -> Versions {
        let v = Versions {
            lo: self.lo.max(other.lo),
            hi: self.hi.min(other.hi),
        };
        if v.is_empty() { Versions::NONE } else { v }
    }

    pub fn contains_all(self, other: Versions) -> bool {
        other.is_empty() || (!self.is_empty() && self.lo <= other.lo && other.hi <= self.hi)
    }
}

/// Kafka's primitive field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float64,
    String,
    Bytes,
    Records,
    Uuid,
}

impl Prim {
    fn parse(name: &str) -> Option<Prim> {
        Some(match name {
            "bool" => Prim::Bool,
            "int8" => Prim::Int8,
            "int16" => Prim::Int16,
            "uint16" => Prim::Uint16,
            "int32" => Prim::Int32,
            "uint32" => Prim::Uint32,
            "int64" => Prim::Int64,
            "float64" => Prim::Float64,
            "string" => Prim::String,
            "bytes" => Prim::Bytes,
            "records" => Prim::Records,
            "uuid" => Prim::Uuid,
            _ => return None,
        })
    }

    /// Fewest bytes a value can take on the wire in any encoding.
    pub fn size_bytes_min(self) -> usize {
        match self {
            Prim::Bool | Prim::Int8 => 1,
            Prim::Int16 | Prim::Uint16 => 2,
            Prim::Int32 | Prim::Uint32 => 4,
            Prim::Int64 | Prim::Float64 => 8,
            Prim::Uuid => 16,
            Prim::String | Prim::Bytes | Prim::Records => 1,
        }
    }
}

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Prim(Prim),
    Array(Box<Ty>),
    Struct(String),
}

/// A field, resolved.
#[derive(Debug, Clone)]
pub struct Field {
    pub spec_name: String,
    pub rust_name: String,
    pub ty: Ty,
    pub versions: Versions,
    pub nullable: Versions,
    pub tag: Option<u32>,
    pub default: Option<Value>,
    pub ignorable: bool,
    pub about: String,
    /// A per-field override of the message's flexible versions (RequestHeader.ClientId).
    pub flexible_override: Option<Versions>,
}

impl Field {
    /// Whether the Rust type is an `Option`.
    pub fn is_option(&self) -> bool {
        matches!(self.ty, Ty::Prim(Prim::Records)) || !self.nullable.is_empty()
    }
}

/// A struct: the message itself or a nested/common struct.
#[derive(Debug, Clone)]
pub struct Struct {
    pub name: String,
    pub about: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
}

/// A whole message spec, resolved.
#[derive(Debug, Clone)]
pub struct Message {
    pub name: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    pub valid: Versions,
    pub flexible: Versions,
    pub latest_version_unstable: bool,
    /// The top-level struct (named like the message).
    pub top: Struct,
    /// Nested and common structs, each once, in first-use order.
    pub structs: Vec<Struct>,
}

impl Message {
    pub fn find_struct(&self, name: &str) -> Option<&Struct> {
        if self.top.name == name {
            Some(&self.top)
        } else {
            self.structs.iter().find(|s| s.name == name)
        }
    }
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// The snake_case Rust name of a spec field name, raw-escaped if it is a keyword.
pub fn field_ident(spec_name: &str) -> String {
    let snake = spec_name.to_snake_case();
    if RUST_KEYWORDS.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else {
        snake
    }
}

fn parse_ty(text: &str) -> Ty {
    if let Some(inner) = text.strip_prefix("[]") {
        return Ty::Array(Box::new(parse_ty(inner)));
    }
    match Prim::parse(text) {
        Some(p) => Ty::Prim(p),
        None => Ty::Struct(text.to_string()),
    }
}

fn struct_name_of(ty: &Ty) -> Option<&str> {
    match ty {
        Ty::Struct(name) => Some(name),
        Ty::Array(inner) => struct_name_of(inner),
        Ty::Prim(_) => None,
    }
}

struct Builder<'a> {
    spec: &'a MessageSpec,
    structs: Vec<Struct>,
}

impl Builder<'_> {
    fn fields(&mut self, specs: &[FieldSpec]) -> Result<Vec<Field>, String> {
        specs.iter().map(|f| self.field(f)).collect()
    }

    fn field(&mut self, spec: &FieldSpec) -> Result<Field, String> {
        let ty = parse_ty(spec.ty.trim());
        let versions = Versions::parse(spec.versions.as_deref().unwrap_or("none"))?;
        let nullable = Versions::parse(spec.nullable_versions.as_deref().unwrap_or("none"))?;
        let tagged = Versions::parse(spec.tagged_versions.as_deref().unwrap_or("none"))?;
        if spec.tag.is_some()
            && tagged != versions
            && !(tagged.is_empty() && spec.tagged_versions.is_none())
        {
            return Err(format!(
                "{}.{}: taggedVersions must equal versions",
                self.spec.name, spec.name
            ));
        }
        let tag = match &spec.tag {
            None => None,
            Some(Value::Number(n)) => n.as_u64().and_then(|t| u32::try_from(t).ok()),
            Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
            Some(_) => None,
        };
        if spec.tag.is_some() && tag.is_none() {
            return Err(format!(
                "{}.{}: bad tag {:?}",
                self.spec.name, spec.name, spec.tag
            ));
        }
        if let Some(name) = struct_name_of(&ty) {
            let name = name.to_string();
            let declared = match &spec.fields {
                Some(fields) => Some((fields.clone(), spec.about.clone())),
                None => self
                    .spec
                    .common_structs
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| (s.fields.clone(), None)),
            };
            let Some((fields, about)) = declared else {
                return Err(format!("{}: struct {name} is not defined", self.spec.name));
            };
            if !self.structs.iter().any(|s| s.name == name) {
                // Reserve the slot first so nested structs come after their parent.
                let index = self.structs.len();
                self.structs.push(Struct {
                    name: name.clone(),
                    about: String::new(),
                    fields: Vec::new(),
                });
                let resolved = self.fields(&fields)?;
                self.structs[index] = Struct {
                    name: name.clone(),
                    about: about.unwrap_or_default(),
                    fields: resolved,
                };
            }
        }
        Ok(Field {
            spec_name: spec.name.clone(),
            rust_name: field_ident(&spec.name),
            ty,
            versions,
            nullable,
            tag,
            default: spec.default.clone(),
            ignorable: spec.ignorable,
            about: spec.about.clone().unwrap_or_default(),
            flexible_override: match &spec.flexible_versions {
                Some(text) => Some(Versions::parse(text)?),
                None => None,
            },
        })
    }
}

/// Resolves a parsed spec into the model.
pub fn resolve(spec: &MessageSpec) -> Result<Message, String> {
    let kind = match spec.kind.as_str() {
        "request" => Kind::Request,
        "response" => Kind::Response,
        "header" => Kind::Header,
        other => return Err(format!("{}: unsupported type {other}", spec.name)),
    };
    let mut builder = Builder {
        spec,
        structs: Vec::new(),
    };
    let fields = builder.fields(&spec.fields)?;
    Ok(Message {
        name: spec.name.clone(),
        kind,
        api_key: spec.api_key,
        valid: Versions::parse(&spec.valid_versions)?,
        flexible: Versions::parse(spec.flexible_versions.as_deref().unwrap_or("none"))?,
        latest_version_unstable: spec.latest_version_unstable,
        top: Struct {
            name: spec.name.clone(),
            about: String::new(),
            fields,
        },
        structs: builder.structs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_forms_parse() {
        assert_eq!(
            Versions::parse("3+").unwrap(),
            Versions {
                lo: 3,
                hi: i16::MAX
            }
        );
        assert_eq!(Versions::parse("1-4").unwrap(), Versions { lo: 1, hi: 4 });
        assert_eq!(Versions::parse("2").unwrap(), Versions { lo: 2, hi: 2 });
        assert!(Versions::parse("none").unwrap().is_empty());
    }

    #[test]
    fn keyword_field_names_are_raw_identifiers() {
        assert_eq!(field_ident("Type"), "r#type");
        assert_eq!(field_ident("ThrottleTimeMs"), "throttle_time_ms");
    }
}
