//! Every `spate bench` workload, at a tiny scale, against the real `spate` binary and the
//! null broker, so the tool cannot rot. The checks are for sanity, not speed: the run
//! exits 0, throughput is not zero, percentiles are in order, the JSON parses, its
//! histogram decodes, and `--plot` writes an SVG.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use serde_json::Value;
use spate_tests::broker::Broker;

const TINY: [&str; 6] = ["--warmup", "0.2", "--duration", "0.6", "--interval", "0.2"];

fn bench(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_spate-bench"))
        .args(args)
        .output()
        .expect("run spate-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "spate-bench {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    output
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_throughput(report: &Value, key: &str) {
    let t = &report[key];
    assert!(t["mb_per_s"].as_f64().unwrap() > 0.0, "{key}: {t}");
    assert!(t["records_per_s"].as_f64().unwrap() > 0.0, "{key}: {t}");
    assert!(
        !t["intervals"].as_array().unwrap().is_empty(),
        "{key}: no intervals"
    );
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains("<svg") && text.contains("</svg>"),
        "not an SVG: {path:?}"
    );
}

#[test]
fn produce_with_both_floors_reports_ratios() {
    let broker = Broker::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (json_path, svg_path) = (out.path().join("p.json"), out.path().join("p.svg"));
    let data_dir = broker.data_dir().to_str().unwrap().to_string();
    let bootstrap = broker.bootstrap();
    let mut args = vec!["produce", "--bootstrap", &bootstrap, "--flush", "always"];
    args.extend(TINY);
    args.extend([
        "--data-dir",
        &data_dir,
        "--record-size",
        "100..1000",
        "--keys",
        "--partitions",
        "3",
    ]);
    args.extend([
        "--json",
        json_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    let output = bench(&args);
    let report = json(&json_path);
    assert_throughput(&report, "throughput");
    assert_throughput(&report, "null_broker");
    assert_eq!(report["flush"], "always");
    assert!(
        report["flush_note"].as_str().unwrap().contains("set on"),
        "{report}"
    );
    let disk = &report["disk"];
    assert!(disk["mb_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        disk["fdatasync"]["count"].as_u64().unwrap() > 0,
        "always syncs: {disk}"
    );
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "{ratios:?}");
    assert!(ratios.iter().all(|r| r["value"].as_f64().unwrap() > 0.0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("spate / null-broker"));
    assert_svg(&svg_path);
}

#[test]
fn latency_is_open_loop_with_ordered_percentiles_and_a_decodable_histogram() {
    let broker = Broker::start().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (json_path, svg_path) = (out.path().join("l.json"), out.path().join("l.svg"));
    let bootstrap = broker.bootstrap();
    let mut args = vec![
        "latency",
        "--bootstrap",
        &bootstrap,
        "--rate",
        "500",
        "--linger-ms",
        "0",
    ];
    args.extend(TINY);
    args.extend(["--producers", "2", "--consumers", "2", "--partitions", "2"]);
    args.extend([
        "--json",
        json_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    bench(&args);
    let report = json(&json_path);
    let latency = &report["latency"];
    let ordered: Vec<f64> = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]
        .iter()
        .map(|k| latency[k].as_f64().unwrap())
        .collect();
    assert!(ordered[0] > 0.0, "{latency}");
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(latency["histogram_v2_base64"].as_str().unwrap())
        .unwrap();
    let histogram: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap();
    assert_eq!(histogram.len(), latency["count"].as_u64().unwrap());
    // 500/s for the 0.6 s measured: about 300 records, none lost.
    assert!(
        (200..=400).contains(&histogram.len()),
        "{}",
        histogram.len()
    );
    assert_svg(&svg_path);
}

#[test]
fn consume_from_beginning_and_tail_reads_everything_acknowledged() {
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();
    let out = tempfile::tempdir().unwrap();
    for from in ["beginning", "tail"] {
        let json_path = out.path().join(format!("c-{from}.json"));
        let mut args = vec!["consume", "--from", from, "--bootstrap", &bootstrap];
        args.extend(TINY);
        args.extend(["--json", json_path.to_str().unwrap()]);
        bench(&args);
        let report = json(&json_path);
        assert_throughput(&report, "throughput");
        assert_throughput(&report, "null_broker");
        assert_eq!(report["errors"], 0, "{report}");
    }
}

#[test]
fn scale_reads_rss_and_fds_of_the_broker() {
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();
    let pid = broker.pid().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let json_path = out.path().join("s.json");
    let mut args = vec!["scale", "--bootstrap", &bootstrap, "--broker-pid", &pid];
    args.extend(TINY);
    args.extend(["--rss-partitions", "1,8", "--throughput-partitions", "1,4"]);
    args.extend(["--json", json_path.to_str().unwrap()]);
    let output = bench(&args);
    let report = json(&json_path);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["partitions_total"], 9);
    assert!(
        rows.iter()
            .all(|r| r["idle_rss_bytes"].as_u64().unwrap() > 1 << 20)
    );
    assert!(rows.iter().all(|r| r["idle_fds"].as_u64().unwrap() > 0));
    assert_eq!(report["curve"].as_array().unwrap().len(), 2);
    assert!(String::from_utf8_lossy(&output.stdout).contains("| partitions |"));
}

/// The `null-broker` subcommand: a standalone sink the workloads run against.
struct NullBrokerProcess(Child, String);

impl NullBrokerProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate-bench"))
            .args(["null-broker", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().rsplit(' ').next().unwrap().to_string();
        NullBrokerProcess(child, address)
    }
}

impl Drop for NullBrokerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn workloads_run_against_the_standalone_null_broker() {
    let null = NullBrokerProcess::start();
    let out = tempfile::tempdir().unwrap();
    for workload in ["produce", "consume"] {
        let json_path = out.path().join(format!("{workload}.json"));
        let mut args = vec![workload, "--bootstrap", &null.1, "--no-floors"];
        args.extend(TINY);
        args.extend(["--json", json_path.to_str().unwrap()]);
        bench(&args);
        assert_throughput(&json(&json_path), "throughput");
    }
}

#[test]
fn suite_writes_every_section() {
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();
    let pid = broker.pid().unwrap().to_string();
    let data_dir = broker.data_dir().to_str().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let markdown = out.path().join("suite.md");
    let artifacts = out.path().join("artifacts");
    bench(&[
        "suite",
        "--bootstrap",
        &bootstrap,
        "--broker-pid",
        &pid,
        "--data-dir",
        &data_dir,
        "--warmup",
        "0.1",
        "--duration",
        "0.4",
        "--rss-partitions",
        "1,4",
        "--throughput-partitions",
        "1,2",
        "--out",
        markdown.to_str().unwrap(),
        "--artifacts",
        artifacts.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&markdown).unwrap();
    for section in [
        "### Machine",
        "### Throughput",
        "### End-to-end latency",
        "### Memory",
    ] {
        assert!(text.contains(section), "missing {section}:\n{text}");
    }
    assert!(
        text.contains("produce-1k-64k-always") && text.contains("latency-100b-linger0-10k-never")
    );
    assert!(artifacts.join("produce-1k-64k-never.svg").is_file());
}
