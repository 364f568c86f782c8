//! `faultline test --change-stream`: a watcher that reads a change stream on the workload's collection for the
//! whole run, as an application would, and records what it saw in `change-stream.jsonl` (the format is
//! [`faultline_checker::change_stream`]'s, which checks it against the history).
//!
//! The watcher connects through the replica-set URI with the Rust driver (as the clients do, but with
//! `readConcern: majority`, which change streams need, and retryable reads on). The driver resumes the stream
//! by itself after a resumable error; when it gives up instead, the stream is reopened from the last resume
//! token, and a `reopen` line says so. Once told to stop (after the final reads), it drains the stream until
//! a batch comes back empty: everything majority-committed by then has been read.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bson::{Bson, Document};
use faultline_checker::change_stream as stream_check;
use faultline_checker::result::{CheckResult, Validity};
use faultline_workloads::client::{ClientMode, ClientSpec, Endpoints, connection_uri};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::{Client, Collection};
use serde_json::json;
use tokio::sync::watch;

/// How long one `getMore` of the stream waits for new events.
const AWAIT: Duration = Duration::from_millis(500);
/// How long, once stopped, the watcher may take to read what is left.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// How long opening the stream at the start may take.
const OPEN_LIMIT: Duration = Duration::from_secs(30);
/// Pause between attempts to reopen the stream while no primary is reachable.
const REOPEN_BACKOFF: Duration = Duration::from_millis(250);

/// What the watcher saw, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watched {
    pub events: u64,
    pub reopens: u64,
}

/// An open stream, ready to be read by [`Watcher::run`].
pub struct Watcher {
    client: Client,
    collection: Collection<Document>,
    stream: ChangeStream<ChangeStreamEvent<Document>>,
    out: std::io::BufWriter<std::fs::File>,
    started: Instant,
    watched: Watched,
}

/// The path of the watcher's file in `run_dir`.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(faultline_reports::run_dir::names::CHANGE_STREAM)
}

impl Watcher {
    /// Connects and opens the stream on `collection`; the run's writes start after this returns, so the stream
    /// sees every one of them. Times in the file are nanoseconds since `started` (the history's clock).
    pub async fn open(
        clients: &ClientSpec,
        endpoints: &Endpoints,
        collection: &str,
        run_dir: &Path,
        started: Instant,
    ) -> anyhow::Result<Watcher> {
        let spec = ClientSpec {
            mode: ClientMode::ReplicaSet,
            read_concern: "majority".into(),
            read_preference: "primary".into(),
            ..clients.clone()
        };
        let uri = connection_uri(&spec, endpoints, 0)?.replace("retryReads=false", "retryReads=true");
        let client = Client::with_uri_str(&uri)
            .await
            .context("change stream: cannot create the client")?;
        let collection = client.database(&spec.database).collection::<Document>(collection);
        // The primary the cluster just elected may still be settling: retry until it answers.
        let deadline = Instant::now() + OPEN_LIMIT;
        let stream = loop {
            match collection.watch().max_await_time(AWAIT).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() >= deadline => {
                    return Err(error).context("change stream: cannot open the stream");
                }
                Err(_) => tokio::time::sleep(REOPEN_BACKOFF).await,
            }
        };
        let path = path(run_dir);
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut watcher = Watcher {
            client,
            collection,
            stream,
            out: std::io::BufWriter::new(file),
            started,
            watched: Watched::default(),
        };
        watcher.write(&json!({"open": "start", "time": watcher.nanos()}))?;
        Ok(watcher)
    }

    /// Reads the stream until `stop` turns true, then drains it; returns what it saw.
    pub async fn run(mut self, stop: watch::Receiver<bool>) -> anyhow::Result<Watched> {
        let mut drain_until: Option<Instant> = None;
        loop {
            if drain_until.is_none() && *stop.borrow() {
                drain_until = Some(Instant::now() + DRAIN_LIMIT);
            }
            if drain_until.is_some_and(|limit| Instant::now() >= limit) {
                break;
            }
            match self.stream.next_if_any().await {
                Ok(Some(event)) => self.record(&event)?,
                // An empty batch after the stop: the stream has caught up with the majority-committed oplog.
                Ok(None) if drain_until.is_some() => break,
                Ok(None) => {}
                Err(error) => self.reopen(&error.to_string(), &stop, drain_until).await?,
            }
        }
        self.out.flush().context("cannot write change-stream.jsonl")?;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.shutdown()).await;
        Ok(self.watched)
    }

    /// Reopens the stream from its last resume token (the driver gave up resuming it), retrying until a primary
    /// answers or, once stopped, the drain limit passes.
    async fn reopen(
        &mut self,
        reason: &str,
        stop: &watch::Receiver<bool>,
        drain_until: Option<Instant>,
    ) -> anyhow::Result<()> {
        self.watched.reopens += 1;
        let token = self.stream.resume_token();
        let reason = reason.lines().next().unwrap_or_default();
        self.write(&json!({"reopen": reason, "time": self.nanos(), "token": token.is_some()}))?;
        let mut limit = drain_until;
        loop {
            let reopened = match token.clone() {
                Some(token) => self.collection.watch().max_await_time(AWAIT).resume_after(token).await,
                None => self.collection.watch().max_await_time(AWAIT).await,
            };
            match reopened {
                Ok(stream) => {
                    self.stream = stream;
                    return Ok(());
                }
                Err(error) => {
                    if *stop.borrow()
                        && limit.get_or_insert_with(|| Instant::now() + DRAIN_LIMIT) <= &mut Instant::now()
                    {
                        anyhow::bail!("change stream: could not reopen the stream after the run: {error}")
                    }
                    tokio::time::sleep(REOPEN_BACKOFF).await;
                }
            }
        }
    }

    fn record(&mut self, event: &ChangeStreamEvent<Document>) -> anyhow::Result<()> {
        if event.operation_type != OperationType::Insert {
            let kind = format!("{:?}", event.operation_type);
            return self.write(&json!({"other": kind, "time": self.nanos()}));
        }
        let element = event
            .document_key
            .as_ref()
            .and_then(|key| key.get("_id"))
            .cloned()
            .unwrap_or(Bson::Null)
            .into_relaxed_extjson();
        let time = event.cluster_time.map(|t| json!([t.time, t.increment]));
        self.watched.events += 1;
        self.write(&json!({"element": element, "clusterTime": time, "time": self.nanos()}))
    }

    fn nanos(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn write(&mut self, line: &serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.out, "{line}").context("cannot write change-stream.jsonl")
    }
}

/// The change-stream verdict of a run: the watcher's file in `run_dir` against `history`. A watcher that
/// failed, or a file that cannot be read, is an `unknown` verdict saying why.
pub fn check(
    run_dir: &Path,
    history: &faultline_checker::history::History,
    majority_acked: bool,
    watched: anyhow::Result<Watched>,
) -> CheckResult {
    let undecided = |reason: String| {
        let mut result = CheckResult::new("change-stream");
        result.valid = Validity::Unknown;
        result.details = json!({ "reason": reason });
        result
    };
    if let Err(error) = watched {
        return undecided(format!("the watcher failed: {error:#}"));
    }
    let path = path(run_dir);
    let records = match std::fs::read_to_string(&path) {
        Ok(text) => match stream_check::parse(&text) {
            Ok(records) => records,
            Err(error) => return undecided(error),
        },
        Err(error) => return undecided(format!("cannot read {}: {error}", path.display())),
    };
    match faultline_checker::history::pair(history) {
        Ok(paired) => stream_check::check(history, &paired, &records, majority_acked),
        Err(error) => undecided(error.to_string()),
    }
}
