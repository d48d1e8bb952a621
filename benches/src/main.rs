//! `spate-bench`: the same as `spate bench`, for use without the broker binary.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "spate-bench",
    about = "Throughput and latency of any Kafka-compatible broker, with floors"
)]
struct Cli {
    #[command(flatten)]
    bench: spate_bench::BenchArgs,
}

fn main() -> std::process::ExitCode {
    spate_bench::run(Cli::parse().bench)
}
