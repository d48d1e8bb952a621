//! `spate-codegen`: turns Kafka's JSON message specs into Spate's Rust codec.
//!
//! Why generate: Kafka defines ~90 APIs with up to 18 versions each; writing and keeping that
//! by hand is where protocol bugs come from. The specs are the source of truth, the output is
//! committed (so a clone builds without the specs), and a test checks the two agree.
//!
//! It does not decide anything about wire safety: every read goes through hand-written
//! functions in `spate_protocol::wire`, which own the bounds and allocation checks.

mod emit_codec;
mod emit_fuzz;
mod emit_message;
mod emit_mod;
mod model;
mod spec;
mod types;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A generated file: path relative to its output folder, and contents.
pub type GeneratedFile = (String, String);

fn is_message_spec(name: &str) -> bool {
    name.ends_with("Request.json")
        || name.ends_with("Response.json")
        || name == "RequestHeader.json"
        || name == "ResponseHeader.json"
}

fn load_messages(spec_dir: &Path) -> Result<Vec<(String, model::Message)>, String> {
    let entries =
        std::fs::read_dir(spec_dir).map_err(|e| format!("{}: {e}", spec_dir.display()))?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_message_spec(name))
        .collect();
    files.sort();
    let mut messages = Vec::new();
    for file in files {
        let spec = spec::load(&spec_dir.join(&file))?;
        messages.push((file, model::resolve(&spec)?));
    }
    Ok(messages)
}

/// Formats Rust source with the toolchain's rustfmt, so output is stable and readable.
pub fn rustfmt(source: &str) -> Result<String, String> {
    let mut child = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt stdin unavailable")?;
    let text = source.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt failed: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer panicked")?
        .map_err(|e| format!("rustfmt stdin: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt rejected generated code: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

/// Generates the contents of `protocol/src/messages/`.
pub fn generate_messages(spec_dir: &Path) -> Result<Vec<GeneratedFile>, String> {
    let loaded = load_messages(spec_dir)?;
    let messages: Vec<model::Message> = loaded.iter().map(|(_, m)| m.clone()).collect();
    let apis = emit_mod::pair_apis(&messages)?;
    let mut files = Vec::new();
    for (spec_file, message) in &loaded {
        let source = emit_message::emit_message(message, spec_file)?;
        files.push((
            format!("{}.rs", emit_message::module_name(message)),
            rustfmt(&source)?,
        ));
    }
    files.push((
        "api_keys.rs".into(),
        rustfmt(&emit_mod::emit_api_keys(&apis))?,
    ));
    for (name, source) in emit_mod::emit_mod(&messages, &apis) {
        files.push((name, rustfmt(&source)?));
    }
    Ok(files)
}

/// Generates the cargo-fuzz targets (one per request decoder, plus the request header) and
/// the fuzz crate's `Cargo.toml`, relative to `protocol/fuzz/`.
pub fn generate_fuzz(spec_dir: &Path) -> Result<Vec<GeneratedFile>, String> {
    let loaded = load_messages(spec_dir)?;
    let messages: Vec<model::Message> = loaded.into_iter().map(|(_, m)| m).collect();
    let apis = emit_mod::pair_apis(&messages)?;
    emit_fuzz::emit(&apis)
}

/// Writes the fuzz crate: generated targets, plus the manifest with its generated block
/// replaced and everything hand-written around it kept.
pub fn write_fuzz_files(fuzz_dir: &Path, files: &[GeneratedFile]) -> Result<(), String> {
    let mut plain = Vec::new();
    for (name, text) in files {
        if name == "Cargo.toml.block" {
            let path = fuzz_dir.join("Cargo.toml");
            let existing = std::fs::read_to_string(&path).ok();
            let merged = emit_fuzz::merge_manifest(existing.as_deref(), text);
            plain.push(("Cargo.toml".to_string(), merged));
        } else {
            plain.push((name.clone(), text.clone()));
        }
    }
    write_files(fuzz_dir, &plain)
}

/// Writes `files` under `out_dir`, creating folders as needed.
pub fn write_files(out_dir: &Path, files: &[GeneratedFile]) -> Result<(), String> {
    for (relative, contents) in files {
        let path = out_dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
