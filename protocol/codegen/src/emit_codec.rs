//! Emits the `read` and `write` routines of one struct.

use crate::model::{Field, Message, Prim, Struct, Ty};
use crate::types::{Cond, cond, cond_within, label, non_default_expr, size_bytes_min};

/// Per-struct emission context.
pub struct Codec<'a> {
    pub msg: &'a Message,
    pub strukt: &'a Struct,
}

fn scalar_fn(p: Prim) -> Option<&'static str> {
    Some(match p {
        Prim::Bool => "bool",
        Prim::Int8 => "i8",
        Prim::Int16 => "i16",
        Prim::Uint16 => "u16",
        Prim::Int32 => "i32",
        Prim::Uint32 => "u32",
        Prim::Int64 => "i64",
        Prim::Float64 => "f64",
        Prim::Uuid => "uuid",
        Prim::String | Prim::Bytes | Prim::Records => return None,
    })
}

/// Picks between a nullable and a non-null form by the field's nullable versions.
fn choose(c: &Cond, nullable: String, non_null: String, expression: bool) -> String {
    match c {
        Cond::Always => nullable,
        Cond::Never => non_null,
        Cond::When(c) if expression => format!("if {c} {{ {nullable} }} else {{ {non_null} }}"),
        Cond::When(c) => format!("if {c} {{ {nullable} }} else {{ {non_null} }}\n"),
    }
}

impl Codec<'_> {
    fn label(&self, field: &Field) -> String {
        label(&self.strukt.name, field)
    }

    /// The expression for whether `field` uses compact encodings, outside tagged sections.
    pub fn flex_expr(&self, field: &Field) -> String {
        match field.flexible_override {
            Some(v) => cond(self.msg, v.intersect(self.msg.flexible)).expr(),
            None => match cond(self.msg, self.msg.flexible) {
                Cond::When(_) => "flexible".into(),
                other => other.expr(),
            },
        }
    }

    fn nullable_cond(&self, field: &Field) -> Cond {
        if matches!(field.ty, Ty::Prim(Prim::Records)) && field.nullable.is_empty() {
            return Cond::Never;
        }
        cond_within(self.msg, field.nullable, field.versions)
    }

    /// An expression (with `?`) that reads `field` from `buf`.
    pub fn read_expr(&self, field: &Field, buf: &str, flex: &str) -> String {
        let lbl = self.label(field);
        let nullable = self.nullable_cond(field);
        let wrap = |non_null: String| {
            if field.is_option() {
                format!("Some({non_null})")
            } else {
                non_null
            }
        };
        match &field.ty {
            Ty::Prim(p) => match scalar_fn(*p) {
                Some(f) => format!("wire::read_{f}({buf}, {lbl})?"),
                None => {
                    let kind = if *p == Prim::String {
                        "string"
                    } else {
                        "bytes"
                    };
                    let non_null = wrap(format!("wire::read_{kind}({buf}, {flex}, {lbl})?"));
                    if !field.is_option() {
                        return non_null;
                    }
                    choose(
                        &nullable,
                        format!("wire::read_nullable_{kind}({buf}, {flex}, {lbl})?"),
                        non_null,
                        true,
                    )
                }
            },
            Ty::Array(inner) => {
                let element = match inner.as_ref() {
                    Ty::Prim(p) => match scalar_fn(*p) {
                        Some(f) => format!("|b| wire::read_{f}(b, {lbl})"),
                        None if *p == Prim::String => {
                            format!("|b| wire::read_string(b, {flex}, {lbl})")
                        }
                        None => format!("|b| wire::read_bytes(b, {flex}, {lbl})"),
                    },
                    Ty::Struct(name) => format!("|b| {name}::read(b, version)"),
                    Ty::Array(_) => unreachable_nested(),
                };
                let size = size_bytes_min(self.msg, inner);
                let non_null = wrap(format!(
                    "wire::read_array({buf}, {flex}, {lbl}, {size}, {element})?"
                ));
                if !field.is_option() {
                    return non_null;
                }
                choose(
                    &nullable,
                    format!("wire::read_nullable_array({buf}, {flex}, {lbl}, {size}, {element})?"),
                    non_null,
                    true,
                )
            }
            Ty::Struct(name) => {
                let non_null = wrap(format!("{name}::read({buf}, version)?"));
                if !field.is_option() {
                    return non_null;
                }
                choose(
                    &nullable,
                    format!(
                        "if wire::read_struct_present({buf}, {lbl})? {{ Some({name}::read({buf}, version)?) }} else {{ None }}"
                    ),
                    non_null,
                    true,
                )
            }
        }
    }

    /// Statements that write `value` (a place expression of the field's type) to `sink`.
    pub fn write_stmt(&self, field: &Field, value: &str, sink: &str, flex: &str) -> String {
        let lbl = self.label(field);
        let nullable = self.nullable_cond(field);
        let null_err = format!("ok_or(EncodeError::NullNotAllowed {{ field: {lbl}, version }})?");
        match &field.ty {
            Ty::Prim(p) => match scalar_fn(*p) {
                Some("uuid") => format!("wire::write_uuid({sink}, &{value});\n"),
                Some(f) => format!("wire::write_{f}({sink}, {value});\n"),
                None => {
                    let kind = if *p == Prim::String {
                        "string"
                    } else {
                        "bytes"
                    };
                    if !field.is_option() {
                        return format!("wire::write_{kind}({sink}, {flex}, {lbl}, &{value})?;\n");
                    }
                    choose(
                        &nullable,
                        format!(
                            "wire::write_nullable_{kind}({sink}, {flex}, {lbl}, {value}.as_deref())?;\n"
                        ),
                        format!(
                            "wire::write_{kind}({sink}, {flex}, {lbl}, {value}.as_deref().{null_err})?;\n"
                        ),
                        false,
                    )
                }
            },
            Ty::Array(inner) => {
                let element = match inner.as_ref() {
                    Ty::Prim(p) => match scalar_fn(*p) {
                        Some("uuid") => {
                            "|sink, e| { wire::write_uuid(sink, e); Ok(()) }".to_string()
                        }
                        Some(f) => format!("|sink, e| {{ wire::write_{f}(sink, *e); Ok(()) }}"),
                        None if *p == Prim::String => {
                            format!("|sink, e| wire::write_string(sink, {flex}, {lbl}, e)")
                        }
                        None => format!("|sink, e| wire::write_bytes(sink, {flex}, {lbl}, e)"),
                    },
                    Ty::Struct(_) => "|sink, e| e.write(sink, version)".to_string(),
                    Ty::Array(_) => unreachable_nested(),
                };
                if !field.is_option() {
                    return format!(
                        "wire::write_array({sink}, {flex}, {lbl}, &{value}, {element})?;\n"
                    );
                }
                choose(
                    &nullable,
                    format!(
                        "wire::write_nullable_array({sink}, {flex}, {lbl}, {value}.as_deref(), {element})?;\n"
                    ),
                    format!(
                        "wire::write_array({sink}, {flex}, {lbl}, {value}.as_deref().{null_err}, {element})?;\n"
                    ),
                    false,
                )
            }
            Ty::Struct(_) => {
                if !field.is_option() {
                    return format!("{value}.write({sink}, version)?;\n");
                }
                choose(
                    &nullable,
                    format!(
                        "match &{value} {{ Some(v) => {{ wire::write_struct_present({sink}, true); v.write({sink}, version)?; }} None => wire::write_struct_present({sink}, false), }}\n"
                    ),
                    format!("{value}.as_ref().{null_err}.write({sink}, version)?;\n"),
                    false,
                )
            }
        }
    }

    /// The body of `fn read(buf, version) -> Result<Self, DecodeError>`.
    pub fn read_body(&self) -> Result<String, String> {
        let mut out = String::new();
        let mut assigns = String::new();
        for field in self.strukt.fields.iter().filter(|f| f.tag.is_none()) {
            let flex = self.flex_expr(field);
            let read = self.read_expr(field, "buf", &flex);
            match cond(self.msg, field.versions) {
                Cond::Always => assigns.push_str(&format!("this.{} = {read};\n", field.rust_name)),
                Cond::Never => {}
                Cond::When(c) => assigns.push_str(&format!(
                    "if {c} {{ this.{} = {read}; }}\n",
                    field.rust_name
                )),
            }
        }
        let flexible = cond(self.msg, self.msg.flexible);
        if flexible != Cond::Never {
            let tagged: Vec<&Field> = self.tagged_fields();
            let mut arms = String::new();
            for field in &tagged {
                let Some(tag) = field.tag else { continue };
                let guard = match cond(self.msg, field.versions) {
                    Cond::Never => continue,
                    Cond::Always => String::new(),
                    Cond::When(c) => format!(" if {c}"),
                };
                let read = self.read_expr(field, "field_buf", "true");
                arms.push_str(&format!(
                    "{tag}{guard} => {{ this.{} = {read}; Ok(true) }}\n",
                    field.rust_name
                ));
            }
            let section_label = format!("\"{}._tagged_fields\"", self.strukt.name);
            let closure = if arms.is_empty() {
                "|_, _| Ok(false)".to_string()
            } else {
                format!("|tag, field_buf| match tag {{ {arms} _ => Ok(false), }}")
            };
            let read = format!(
                "let unknown_tagged_fields = wire::read_tagged_fields(buf, {section_label}, {closure})?;\nthis.unknown_tagged_fields = unknown_tagged_fields;\n"
            );
            match flexible {
                Cond::When(c) => assigns.push_str(&format!("if {c} {{ {read} }}\n")),
                _ => assigns.push_str(&read),
            }
        }
        if assigns.is_empty() {
            out.push_str("Ok(Self::default())\n");
        } else {
            out.push_str("let mut this = Self::default();\n");
            out.push_str(&assigns);
            out.push_str("Ok(this)\n");
        }
        Ok(out)
    }

    fn tagged_fields(&self) -> Vec<&Field> {
        let mut tagged: Vec<&Field> = self
            .strukt
            .fields
            .iter()
            .filter(|f| f.tag.is_some())
            .collect();
        tagged.sort_by_key(|f| f.tag);
        tagged
    }

    /// `if [absent_when &&] value != default { return Err(FieldNotInVersion) }`, or nothing
    /// for ignorable fields, which Kafka silently drops.
    fn absent_check_when(
        &self,
        field: &Field,
        value: &str,
        absent_when: Option<&str>,
    ) -> Result<String, String> {
        if field.ignorable {
            return Ok(String::new());
        }
        let lbl = self.label(field);
        let guard = match absent_when {
            Some(c) => format!("{c} && {}", non_default_expr(field, value)?),
            None => non_default_expr(field, value)?,
        };
        Ok(format!(
            "if {guard} {{ return Err(EncodeError::FieldNotInVersion {{ field: {lbl}, version }}); }}\n"
        ))
    }

    fn absent_check(&self, field: &Field, value: &str) -> Result<String, String> {
        self.absent_check_when(field, value, None)
    }

    /// The body of `fn write(&self, sink, version) -> Result<(), EncodeError>`.
    pub fn write_body(&self) -> Result<String, String> {
        let mut out = String::new();
        for field in self.strukt.fields.iter().filter(|f| f.tag.is_none()) {
            let value = format!("self.{}", field.rust_name);
            let flex = self.flex_expr(field);
            let write = self.write_stmt(field, &value, "sink", &flex);
            match cond(self.msg, field.versions) {
                Cond::Always => out.push_str(&write),
                Cond::Never => out.push_str(&self.absent_check(field, &value)?),
                Cond::When(c) => {
                    let absent = self.absent_check(field, &value)?;
                    if absent.is_empty() {
                        out.push_str(&format!("if {c} {{ {write} }}\n"));
                    } else {
                        out.push_str(&format!("if {c} {{ {write} }} else {absent}"));
                    }
                }
            }
        }
        let flexible = cond(self.msg, self.msg.flexible);
        let mut section = String::new();
        if flexible != Cond::Never {
            let tagged = self.tagged_fields();
            let mut count =
                String::from("let mut tagged_count = self.unknown_tagged_fields.len();\n");
            let mut body = String::new();
            let mut known = 0;
            for field in &tagged {
                let Some(tag) = field.tag else { continue };
                let value = format!("self.{}", field.rust_name);
                let present = match cond(self.msg, field.versions) {
                    Cond::Never => continue,
                    Cond::Always => non_default_expr(field, &value)?,
                    Cond::When(c) => format!("{c} && {}", non_default_expr(field, &value)?),
                };
                known += 1;
                count.push_str(&format!("if {present} {{ tagged_count += 1; }}\n"));
                body.push_str(&format!(
                    "if {present} {{\n\
                     wire::write_unknown_tags_below(sink, &self.unknown_tagged_fields, &mut unknown_index, {tag});\n\
                     let mut counter = LenCounter::default();\n{}\
                     wire::write_tagged_header(sink, {tag}, counter.len_bytes);\n{}}}\n",
                    self.write_stmt(field, &value, "&mut counter", "true"),
                    self.write_stmt(field, &value, "sink", "true"),
                ));
            }
            if known == 0 {
                count = "let tagged_count = self.unknown_tagged_fields.len();\n".into();
            }
            section.push_str(&count);
            section.push_str("wire::write_tagged_count(sink, tagged_count);\n");
            section.push_str("let mut unknown_index = 0;\n");
            section.push_str(&body);
            section.push_str("wire::write_unknown_tags_below(sink, &self.unknown_tagged_fields, &mut unknown_index, u64::MAX);\n");
        }
        let not_flexible_err = format!(
            "if !self.unknown_tagged_fields.is_empty() {{ return Err(EncodeError::TaggedFieldsNotInVersion {{ message: \"{}\", version }}); }}\n",
            self.strukt.name
        );
        // Tagged fields set in versions that lack them.
        for field in self.tagged_fields() {
            let value = format!("self.{}", field.rust_name);
            match cond(self.msg, field.versions) {
                Cond::Always => {}
                Cond::Never => out.push_str(&self.absent_check(field, &value)?),
                Cond::When(c) => {
                    out.push_str(&self.absent_check_when(field, &value, Some(&negate(&c)))?)
                }
            }
        }
        match flexible {
            Cond::Always => out.push_str(&section),
            Cond::Never => out.push_str(&not_flexible_err),
            Cond::When(c) => {
                out.push_str(&format!("if {c} {{ {section} }} else {not_flexible_err}"))
            }
        }
        out.push_str("Ok(())\n");
        Ok(out)
    }
}

/// The negation of a condition produced by `types::cond`, written the way clippy likes.
fn negate(c: &str) -> String {
    if let Some(rest) = c.strip_prefix("version == ") {
        format!("version != {rest}")
    } else if let Some(rest) = c.strip_prefix("version >= ") {
        format!("version < {rest}")
    } else if let Some(rest) = c.strip_prefix("version <= ") {
        format!("version > {rest}")
    } else {
        format!("!{c}")
    }
}

fn unreachable_nested() -> String {
    // Kafka's specs have no arrays of arrays; the resolver would have produced one only from
    // a malformed spec, and rustc will reject the emitted text loudly.
    "compile_error!(\"arrays of arrays are not part of Kafka's protocol\")".to_string()
}
