//! `cargo run -p spate-codegen -- [SPEC_DIR] [OUT_DIR] [FUZZ_DIR]`
//!
//! Defaults (relative to the repository root): `../shared/kafka-messages`,
//! `protocol/src/messages`, `protocol/fuzz`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let spec_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/kafka-messages"));
    let out_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("protocol/src/messages"));
    let fuzz_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("protocol/fuzz"));
    let result = spate_codegen::generate_messages(&spec_dir)
        .and_then(|files| spate_codegen::write_files(&out_dir, &files).map(|()| files.len()))
        .and_then(|count| {
            let fuzz = spate_codegen::generate_fuzz(&spec_dir)?;
            spate_codegen::write_fuzz_files(&fuzz_dir, &fuzz)?;
            Ok((count, fuzz.len()))
        });
    match result {
        Ok((messages, fuzz)) => {
            println!(
                "wrote {messages} files to {} and {fuzz} to {}",
                out_dir.display(),
                fuzz_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spate-codegen: {e}");
            ExitCode::FAILURE
        }
    }
}
