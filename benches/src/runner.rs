//! Sets up a run (broker, pinning, runtime), runs one workload and its floors, reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::BenchError;
use crate::args::{
    BenchArgs, BenchCommand, ConsumeFrom, LoadArgs, NullBrokerArgs, RunArgs, TargetArgs,
    parse_cores, seconds,
};
use crate::broker_cmd::ManagedBroker;
use crate::disk_floor::{self, SyncPolicy};
use crate::null_broker::{NullBroker, NullConfig};
use crate::report::Report;
use crate::workload::{self, consume, latency, produce};
use crate::{affinity, metrics, network_floor, plot, scale, suite};

/// Where the run happens: the broker, the cores, the runtime.
pub struct Env {
    pub bootstrap: String,
    pub broker: Option<ManagedBroker>,
    pub broker_pid: Option<u32>,
    pub broker_cores: Vec<usize>,
    pub pinning: String,
    /// Directory for the disk floor, and whether it is known to be the broker's.
    pub floor_dir: PathBuf,
    pub floor_dir_is_brokers: bool,
    pub keep_topics: bool,
    pub runtime: Runtime,
}

impl Env {
    /// Starts the broker (if `--broker-cmd`), pins this thread, builds the runtime.
    pub fn start(target: &TargetArgs) -> Result<Env, BenchError> {
        let broker_cores = parse_cores(&target.broker_cores).map_err(BenchError::Setup)?;
        let broker = match &target.broker_cmd {
            Some(command) => Some(ManagedBroker::start(
                command,
                &target.broker_cores,
                target.bootstrap.as_deref(),
                target.data_dir.as_deref(),
            )?),
            None => None,
        };
        let bootstrap = match (&broker, &target.bootstrap) {
            (Some(broker), _) => broker.bootstrap().to_string(),
            (None, Some(bootstrap)) => bootstrap.clone(),
            (None, None) => {
                return Err(BenchError::Setup(
                    "give --bootstrap HOST:PORT, or --broker-cmd to start a broker".into(),
                ));
            }
        };
        let bench_cores = match (&target.bench_cores, target.no_pin) {
            (_, true) => None,
            (Some(cores), false) => Some(parse_cores(cores).map_err(BenchError::Setup)?),
            (None, false) => Some(affinity::complement(&broker_cores)?),
        };
        if let Some(cores) = &bench_cores {
            affinity::pin_current_thread(cores)?;
        }
        let workers = bench_cores
            .as_ref()
            .map_or_else(
                || affinity::allowed_cores().map_or(1, |c| c.len()),
                Vec::len,
            )
            .max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?;
        let pinning = format!(
            "broker{} on cores {:?}, bench on {}",
            if broker.is_some() {
                " (taskset)"
            } else {
                " expected"
            },
            broker_cores,
            bench_cores
                .as_ref()
                .map_or("any core (unpinned)".to_string(), |c| format!(
                    "cores {c:?}"
                )),
        );
        let (floor_dir, floor_dir_is_brokers) = match (&target.data_dir, &broker) {
            (Some(dir), _) => (dir.clone(), broker.is_some()),
            (None, Some(broker)) => (broker.data_dir().to_path_buf(), true),
            (None, None) => (std::env::temp_dir(), false),
        };
        let broker_pid = broker
            .as_ref()
            .and_then(ManagedBroker::pid)
            .or(target.broker_pid);
        Ok(Env {
            bootstrap,
            broker,
            broker_pid,
            broker_cores,
            pinning,
            floor_dir,
            floor_dir_is_brokers,
            keep_topics: target.keep_topics,
            runtime,
        })
    }

    /// A null broker on the broker's cores, shaped like `load`.
    pub fn null_broker(&self, load: &LoadArgs) -> Result<NullBroker, BenchError> {
        Ok(NullBroker::spawn(
            "127.0.0.1:0",
            NullConfig {
                partitions: load.partitions.max(1),
                record_size_bytes: load.record_size.mean_bytes(),
                batch_size_bytes: load.batch_size,
            },
            Some(self.broker_cores.clone()),
        )?)
    }

    /// The disk floor for `write_bytes` writes under `load.flush`.
    pub fn disk_floor(
        &self,
        load: &LoadArgs,
        write_bytes: usize,
        report: &mut Report,
    ) -> Result<(), BenchError> {
        let Some(policy) = SyncPolicy::parse(&load.flush) else {
            report.notes.push(format!(
                "no disk floor: flush={:?} is not always|never|<ms>",
                load.flush
            ));
            return Ok(());
        };
        let duration =
            seconds(load.duration).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let floor = disk_floor::measure(
            &self.floor_dir,
            write_bytes,
            policy,
            &load.flush,
            duration,
            Some(self.broker_cores.clone()),
        )?;
        if !self.floor_dir_is_brokers {
            report.notes.push(format!(
                "disk floor ran in {} which may not be the broker's disk; pass --data-dir",
                self.floor_dir.display()
            ));
        }
        report.disk = Some(floor);
        Ok(())
    }
}

/// Runs `args`; `Ok(false)` when the run finished but its figures are not sane.
pub fn run(args: BenchArgs) -> Result<bool, BenchError> {
    match args.command {
        BenchCommand::NullBroker(args) => serve_null_broker(&args),
        BenchCommand::NetworkFloor(args) => network_floor::run(&args),
        BenchCommand::NetworkFloorPeer(args) => network_floor::peer::run(&args),
        BenchCommand::Produce(args) => {
            let env = Env::start(&args.target)?;
            finish(run_produce(&env, &args.load, args.output.no_floors)?, &args)
        }
        BenchCommand::Consume(args) => {
            let env = Env::start(&args.run.target)?;
            let report = run_consume(&env, &args.run.load, args.from, args.run.output.no_floors)?;
            finish(report, &args.run)
        }
        BenchCommand::Latency(args) => {
            let env = Env::start(&args.target)?;
            finish(run_latency(&env, &args.load, args.output.no_floors)?, &args)
        }
        BenchCommand::Scale(args) => {
            let env = Env::start(&args.run.target)?;
            scale::run(&env, &args)
        }
        BenchCommand::Suite(args) => {
            let env = Env::start(&args.target)?;
            suite::run(&env, &args)
        }
    }
}

/// Prints, saves and plots a report; says whether its figures are sane.
fn finish(report: Report, args: &RunArgs) -> Result<bool, BenchError> {
    print!("{}", report.table());
    if let Some(path) = &args.output.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.output.plot {
        plot::write(path, &report)?;
    }
    Ok(is_sane(&report))
}

/// No errors, something measured, percentiles in order.
pub fn is_sane(report: &Report) -> bool {
    let throughput_ok = report
        .throughput
        .as_ref()
        .is_some_and(|t| t.mb_per_s > 0.0 && t.records_per_s > 0.0);
    let latency_ok = report.latency.as_ref().is_none_or(|l| {
        let ordered = [l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max];
        l.count > 0 && ordered.windows(2).all(|w| w[0] <= w[1])
    });
    report.errors == 0 && throughput_ok && latency_ok
}

fn serve_null_broker(args: &NullBrokerArgs) -> Result<bool, BenchError> {
    let config = NullConfig {
        partitions: args.partitions,
        record_size_bytes: args.record_size,
        batch_size_bytes: args.batch_size,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        println!("null broker listening on {}", listener.local_addr()?);
        crate::null_broker::serve(listener, config).await
    })?;
    Ok(true)
}

/// The load's shape in words, for the report header.
pub fn params(load: &LoadArgs) -> String {
    format!(
        "{} topic(s) x {} partition(s), {} producer(s), {} consumer(s), record {} B{}, batch.size {} B, linger.ms {}, acks={:?}, compression={:?}, warm-up {} s, duration {} s",
        load.topics,
        load.partitions,
        load.producers,
        load.consumers,
        load.record_size,
        if load.keys { " + 8 B key" } else { "" },
        load.batch_size,
        load.linger_ms,
        load.acks,
        load.compression,
        load.warmup,
        load.duration,
    )
}

pub fn run_produce(env: &Env, load: &LoadArgs, no_floors: bool) -> Result<Report, BenchError> {
    let (mut report, topics) = begin(env, "produce", load, "produce")?;
    let outcome = env
        .runtime
        .block_on(produce::run(&env.bootstrap, load, &topics))?;
    cleanup(env, &topics, &mut report);
    report.throughput = Some(outcome.throughput);
    report.errors = outcome.errors;
    report.first_error = outcome.first_error;
    if !no_floors {
        let floor = null_floor(env, load, "produce", |address, topics| async move {
            produce::run(&address, load, &topics).await
        })?;
        report.null_broker = Some(floor.throughput);
        env.disk_floor(load, load.batch_size, &mut report)?;
    }
    report.compute_ratios();
    Ok(report)
}

pub fn run_consume(
    env: &Env,
    load: &LoadArgs,
    from: ConsumeFrom,
    no_floors: bool,
) -> Result<Report, BenchError> {
    let name = match from {
        ConsumeFrom::Beginning => "consume (from beginning)",
        ConsumeFrom::Tail => "consume (from tail)",
    };
    let (mut report, topics) = begin(env, name, load, "consume")?;
    let outcome = env
        .runtime
        .block_on(consume::run(&env.bootstrap, load, &topics, from))?;
    cleanup(env, &topics, &mut report);
    report.notes.push(format!(
        "read {} of {} records; the producers meanwhile: {:.1} MB/s",
        outcome.consumed_records, outcome.available_records, outcome.produce.mb_per_s
    ));
    if outcome.consumed_records < outcome.available_records {
        report.errors += 1;
        report
            .first_error
            .get_or_insert_with(|| "not every acknowledged record was read".into());
    }
    report.throughput = Some(outcome.throughput);
    report.errors += outcome.errors;
    report.first_error = report.first_error.take().or(outcome.first_error);
    if !no_floors {
        let floor = null_floor(env, load, "consume", |address, topics| async move {
            consume::run(&address, load, &topics, from).await
        })?;
        report.null_broker = Some(floor.throughput);
        report.notes.push(
            "the null broker serves Fetch by copying one pre-built batch; no disk floor for reads"
                .into(),
        );
    }
    report.compute_ratios();
    Ok(report)
}

pub fn run_latency(env: &Env, load: &LoadArgs, no_floors: bool) -> Result<Report, BenchError> {
    let (mut report, topics) = begin(env, "latency", load, "latency")?;
    report
        .params
        .push_str(&format!(", rate {} records/s (open loop)", load.rate));
    let outcome = env
        .runtime
        .block_on(latency::run(&env.bootstrap, load, &topics))?;
    cleanup(env, &topics, &mut report);
    report.latency = Some(metrics::latency(&outcome.histogram));
    report.ack_latency = Some(metrics::latency(&outcome.ack_histogram));
    report.throughput = Some(outcome.throughput);
    report.errors = outcome.errors;
    report.first_error = outcome.first_error;
    report.notes.push(format!(
        "sent {} records, received {}; latency = receipt - scheduled send (coordinated omission corrected)",
        outcome.sent, outcome.received
    ));
    if outcome.received < outcome.sent {
        report.errors += outcome.sent - outcome.received;
        report
            .first_error
            .get_or_insert_with(|| "records sent but never received".into());
    }
    if !no_floors {
        // What one linger window holds at this rate: the size a broker syncs per write.
        let per_window = (load.rate * load.linger_ms as f64 / 1000.0).ceil().max(1.0) as usize;
        let write_bytes = (per_window * load.record_size.mean_bytes()).min(load.batch_size.max(1));
        env.disk_floor(load, write_bytes, &mut report)?;
        report
            .notes
            .push("no null-broker floor for latency: it does not return what it is sent".into());
    }
    report.compute_ratios();
    Ok(report)
}

/// A report for `workload` on the broker under test, and the fresh topics it runs on.
fn begin(
    env: &Env,
    workload: &str,
    load: &LoadArgs,
    tag: &str,
) -> Result<(Report, workload::Topics), BenchError> {
    let mut report = Report::new(
        workload,
        &env.bootstrap,
        &load.flush,
        params(load),
        env.pinning.clone(),
    );
    let topics = env
        .runtime
        .block_on(workload::create_topics(&env.bootstrap, load, tag))?;
    report.flush_note = topics.flush_note.clone();
    Ok((report, topics))
}

/// Runs the same load against a null broker started for it: the client-and-loopback ceiling.
fn null_floor<T, F, Fut>(env: &Env, load: &LoadArgs, tag: &str, run: F) -> Result<T, BenchError>
where
    F: FnOnce(String, workload::Topics) -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>>,
{
    let null = env.null_broker(load)?;
    let address = null.address().to_string();
    let outcome = env.runtime.block_on(async {
        let topics = workload::create_topics(&address, load, tag).await?;
        run(address.clone(), topics).await
    });
    drop(null);
    outcome
}

/// Deletes the run's topics unless `--keep-topics`; notes a refusal.
fn cleanup(env: &Env, topics: &workload::Topics, report: &mut Report) {
    if env.keep_topics {
        return;
    }
    if let Some(note) = env
        .runtime
        .block_on(workload::delete_topics(&env.bootstrap, topics))
    {
        report.notes.push(note);
    }
}

/// Writes `report`'s JSON and SVG into `dir` as `<stem>.json` and `<stem>.svg`.
pub fn save_artifacts(dir: &Path, stem: &str, report: &Report) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir)?;
    report.write_json(&dir.join(format!("{stem}.json")))?;
    plot::write(&dir.join(format!("{stem}.svg")), report)?;
    Ok(())
}
