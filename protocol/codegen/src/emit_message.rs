//! Emits one message file: its structs, their defaults, codecs and sample generators.

use std::collections::BTreeSet;

use crate::emit_codec::Codec;
use crate::model::{Field, Kind, Message, Prim, Struct, Ty, Versions};
use crate::types::{Cond, base_type, cond, cond_within, default_expr, field_type};

fn range_text(v: Versions) -> String {
    if v.is_empty() {
        "none".into()
    } else if v.hi == i16::MAX {
        format!("{}+", v.lo)
    } else if v.lo == v.hi {
        v.lo.to_string()
    } else {
        format!("{}-{}", v.lo, v.hi)
    }
}

fn doc(text: &str) -> String {
    text.lines()
        .map(|l| format!("/// {}\n", l.trim()))
        .collect()
}

fn field_doc(field: &Field) -> String {
    let mut text = if field.about.is_empty() {
        format!("`{}`.", field.spec_name)
    } else {
        field.about.clone()
    };
    let mut notes = vec![format!("versions {}", range_text(field.versions))];
    if !field.nullable.is_empty() {
        notes.push(format!("nullable {}", range_text(field.nullable)));
    }
    if let Some(tag) = field.tag {
        notes.push(format!("tagged field {tag}"));
    }
    if field.ignorable {
        notes.push("ignorable".into());
    }
    text.push_str(&format!("\n\nWire: {}.", notes.join(", ")));
    doc(&text)
}

/// Words used in `text`, to decide which imports and parameters are needed.
fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `expr` equals `Default::default()` of its type, so `#[derive(Default)]` will do.
fn is_type_default(expr: &str) -> bool {
    matches!(
        expr,
        "0" | "0.0"
            | "false"
            | "None"
            | "String::new()"
            | "Vec::new()"
            | "Bytes::new()"
            | "Uuid::ZERO"
    ) || (expr.ends_with("::default()") && !expr.starts_with("Some("))
}

fn emit_struct(msg: &Message, s: &Struct, top: bool, out: &mut String) -> Result<(), String> {
    let codec = Codec { msg, strukt: s };
    if top {
        let key = msg
            .api_key
            .map(|k| format!(" (API key {k})"))
            .unwrap_or_default();
        out.push_str(&doc(&format!(
            "Kafka's `{}`{key}.\n\nValid versions {}; flexible versions {}.",
            s.name,
            range_text(msg.valid),
            range_text(msg.flexible)
        )));
    } else if s.about.is_empty() {
        out.push_str(&doc(&format!("A `{}` within `{}`.", s.name, msg.name)));
    } else {
        out.push_str(&doc(&s.about));
    }
    let defaults = s
        .fields
        .iter()
        .map(default_expr)
        .collect::<Result<Vec<_>, _>>()?;
    let derive_default = defaults.iter().all(|d| is_type_default(d));
    if derive_default {
        out.push_str("#[derive(Debug, Clone, Default, PartialEq)]\n");
    } else {
        out.push_str("#[derive(Debug, Clone, PartialEq)]\n");
    }
    out.push_str(&format!("pub struct {} {{\n", s.name));
    for field in &s.fields {
        out.push_str(&field_doc(field));
        out.push_str(&format!(
            "pub {}: {},\n",
            field.rust_name,
            field_type(field)
        ));
    }
    out.push_str(
        "/// Tagged fields this codec does not know, kept so they are re-encoded unchanged.\n",
    );
    out.push_str("pub unknown_tagged_fields: Vec<RawTaggedField>,\n}\n\n");

    if !derive_default {
        out.push_str(&format!(
            "impl Default for {} {{\nfn default() -> Self {{\nSelf {{\n",
            s.name
        ));
        for (field, default) in s.fields.iter().zip(&defaults) {
            out.push_str(&format!("{}: {default},\n", field.rust_name));
        }
        out.push_str("unknown_tagged_fields: Vec::new(),\n}\n}\n}\n\n");
    }

    let flexible_let = match cond(msg, msg.flexible) {
        Cond::When(c) => format!("let flexible = {c};\n"),
        _ => String::new(),
    };
    let with_flexible = |body: String| {
        if words(&body).contains("flexible") {
            format!("{flexible_let}{body}")
        } else {
            body
        }
    };
    let read_body = with_flexible(codec.read_body()?);
    let write_body = with_flexible(codec.write_body()?);
    let param = |body: &str, name: &str| {
        if words(body).contains(name) {
            name.to_string()
        } else {
            format!("_{name}")
        }
    };
    out.push_str(&format!("impl {} {{\n", s.name));
    if top {
        if let Some(key) = msg.api_key {
            out.push_str(&format!(
                "/// The API key this message is sent under.\npub const API_KEY: i16 = {key};\n"
            ));
        }
        out.push_str(&format!(
            "/// The versions Kafka 4.0 defines for this message.\npub const VERSIONS: RangeInclusive<i16> = {}..={};\n",
            msg.valid.lo, msg.valid.hi
        ));
    }
    out.push_str(&format!(
        "/// Reads the fields present at `version`; the caller has checked the version is valid.\n\
         pub(crate) fn read({}: &mut Bytes, {}: i16) -> Result<Self, DecodeError> {{\n{read_body}}}\n\n",
        param(&read_body, "buf"),
        param(&read_body, "version"),
    ));
    out.push_str(&format!(
        "/// Writes the fields present at `version`, refusing values that version cannot carry.\n\
         pub(crate) fn write<S: Sink>(&self, {}: &mut S, {}: i16) -> Result<(), EncodeError> {{\n{write_body}}}\n}}\n\n",
        param(&write_body, "sink"),
        param(&write_body, "version"),
    ));
    if top {
        emit_traits(s, out);
    }
    emit_sample(msg, s, out);
    Ok(())
}

fn emit_traits(s: &Struct, out: &mut String) {
    let name = &s.name;
    out.push_str(&format!(
        "impl Decode for {name} {{\n\
         fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {{\n\
         if !Self::VERSIONS.contains(&version) {{\n\
         return Err(DecodeError::UnsupportedVersion {{ message: \"{name}\", version }});\n}}\n\
         Self::read(buf, version)\n}}\n}}\n\n\
         impl Encode for {name} {{\n\
         fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {{\n\
         if !Self::VERSIONS.contains(&version) {{\n\
         return Err(EncodeError::UnsupportedVersion {{ message: \"{name}\", version }});\n}}\n\
         self.write(buf, version)\n}}\n\n\
         fn encoded_len(&self, version: i16) -> Result<usize, EncodeError> {{\n\
         if !Self::VERSIONS.contains(&version) {{\n\
         return Err(EncodeError::UnsupportedVersion {{ message: \"{name}\", version }});\n}}\n\
         let mut counter = LenCounter::default();\n\
         self.write(&mut counter, version)?;\n\
         Ok(counter.len_bytes)\n}}\n}}\n\n"
    ));
}

fn sample_expr(ty: &Ty) -> String {
    match ty {
        Ty::Prim(p) => match p {
            Prim::Bool => "rng.coin()".into(),
            Prim::Float64 => "rng.f64()".into(),
            Prim::Uuid => "rng.uuid()".into(),
            Prim::String => "rng.string()".into(),
            Prim::Bytes | Prim::Records => "rng.bytes()".into(),
            _ => format!("rng.next_u64() as {}", base_type(ty)),
        },
        Ty::Array(inner) => format!("rng.vec(|rng| {})", sample_expr(inner)),
        Ty::Struct(name) => format!("{name}::sample(rng, version)"),
    }
}

fn emit_sample(msg: &Message, s: &Struct, out: &mut String) {
    let mut body = String::new();
    for field in &s.fields {
        let value = sample_expr(&field.ty);
        let value = if field.is_option() {
            let nullable =
                if matches!(field.ty, Ty::Prim(Prim::Records)) && field.nullable.is_empty() {
                    Cond::Never
                } else {
                    cond_within(msg, field.nullable, field.versions)
                };
            match nullable {
                Cond::Never => format!("Some({value})"),
                Cond::Always => format!("if rng.coin() {{ None }} else {{ Some({value}) }}"),
                Cond::When(c) => {
                    format!("if {c} && rng.coin() {{ None }} else {{ Some({value}) }}")
                }
            }
        } else {
            value
        };
        match cond(msg, field.versions) {
            Cond::Never => {}
            Cond::Always => body.push_str(&format!("this.{} = {value};\n", field.rust_name)),
            Cond::When(c) => body.push_str(&format!(
                "if {c} {{ this.{} = {value}; }}\n",
                field.rust_name
            )),
        }
    }
    match cond(msg, msg.flexible) {
        Cond::Never => {}
        Cond::Always => {
            body.push_str("this.unknown_tagged_fields = rng.unknown_tagged_fields();\n")
        }
        Cond::When(c) => body.push_str(&format!(
            "if {c} {{ this.unknown_tagged_fields = rng.unknown_tagged_fields(); }}\n"
        )),
    }
    let version = if words(&body).contains("version") {
        "version"
    } else {
        "_version"
    };
    let (binding, rng) = if body.is_empty() {
        ("let this", "_rng")
    } else {
        ("let mut this", "rng")
    };
    out.push_str(&format!(
        "#[cfg(feature = \"sample\")]\n\
         impl Sample for {} {{\n\
         fn sample({rng}: &mut SampleRng, {version}: i16) -> Self {{\n\
         {binding} = Self::default();\n{body}this\n}}\n}}\n\n",
        s.name
    ));
}

/// The file name (without `.rs`) of a message: `MetadataRequest` → `metadata_request`.
pub fn module_name(msg: &Message) -> String {
    heck::ToSnakeCase::to_snake_case(msg.name.as_str())
}

/// The full source of one message file.
pub fn emit_message(msg: &Message, spec_file: &str) -> Result<String, String> {
    let mut body = String::new();
    emit_struct(msg, &msg.top, true, &mut body)?;
    for s in &msg.structs {
        emit_struct(msg, s, false, &mut body)?;
    }
    let used = words(&body);
    let mut wire_imports: Vec<&str> = Vec::new();
    if used.contains("wire") {
        wire_imports.push("self");
    }
    for name in [
        "Decode",
        "Encode",
        "EncodeError",
        "LenCounter",
        "RawTaggedField",
        "Sink",
        "Uuid",
    ] {
        if used.contains(name) {
            wire_imports.push(name);
        }
    }
    let mut bytes_imports = Vec::new();
    for name in ["Bytes", "BytesMut"] {
        if used.contains(name) {
            bytes_imports.push(name);
        }
    }
    let kind = match msg.kind {
        Kind::Request => "request",
        Kind::Response => "response",
        Kind::Header => "header",
    };
    let mut out = format!(
        "//! Kafka's `{}` {kind}, generated by `spate-codegen` from `{spec_file}`.\n//!\n\
         //! Do not edit: change the generator and rerun it.\n\n",
        msg.name
    );
    if used.contains("RangeInclusive") {
        out.push_str("use std::ops::RangeInclusive;\n\n");
    }
    out.push_str(&format!("use bytes::{{{}}};\n\n", bytes_imports.join(", ")));
    out.push_str("use crate::decode_error::DecodeError;\n");
    if used.contains("Sample") {
        out.push_str(
            "#[cfg(feature = \"sample\")]\nuse crate::wire::sample::{Sample, SampleRng};\n",
        );
    }
    if !wire_imports.is_empty() {
        out.push_str(&format!(
            "use crate::wire::{{{}}};\n",
            wire_imports.join(", ")
        ));
    }
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}
