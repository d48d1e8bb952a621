//! `spate-check`: checks a fault-injection history (JSON lines, see `spate_tests::history`) and
//! prints the verdict, so a saved history can be re-checked by hand or from a script.
//!
//! Usage: `spate-check [--json] HISTORY` (`-` reads standard input). Exit status: 0 valid,
//! 1 anomalies found, 2 the history could not be read or breaks the format.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;

use spate_tests::history::{self, Report};

const USAGE: &str = "usage: spate-check [--json] HISTORY   (HISTORY may be - for stdin)";

/// Exit status for a history that could not be checked, distinct from a failed verdict so a
/// script never mistakes a truncated file for a broker bug or for a pass.
const EXIT_UNREADABLE: u8 = 2;

fn main() -> ExitCode {
    let mut json = false;
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if path.is_none() => path = Some(arg),
            _ => return usage_error(),
        }
    }
    let Some(path) = path else {
        return usage_error();
    };
    let checked = if path == "-" {
        history::check_reader(io::stdin().lock())
    } else {
        match File::open(&path) {
            Ok(file) => history::check_reader(BufReader::new(file)),
            Err(error) => {
                eprintln!("spate-check: {path}: {error}");
                return ExitCode::from(EXIT_UNREADABLE);
            }
        }
    };
    let report = match checked {
        Ok(report) => report,
        Err(error) => {
            eprintln!("spate-check: {path}: {error}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    if let Err(error) = print_report(&report, json) {
        eprintln!("spate-check: writing the report: {error}");
        return ExitCode::from(EXIT_UNREADABLE);
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_report(report: &Report, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)
    } else {
        write!(out, "{report}")
    }
}

fn usage_error() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(EXIT_UNREADABLE)
}
