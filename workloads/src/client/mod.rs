//! Clients: one official `mongodb` driver client per logical process.
//!
//! A [`ClientSpec`] says how to connect — the replica-set URI (what applications do) or directly to one member
//! (what Jepsen does; worker thread `t` talks to member `t mod n`) — and with which write concern, read
//! concern and read preference. A [`Session`] runs one operation at a time under a deadline and reports which
//! member served it (from the driver's connection check-out events). [`classify`] turns driver errors into `fail`
//! (definitely did not happen) or `info` (indeterminate).

pub mod classify;

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::Document;
use mongodb::event::cmap::CmapEvent;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use classify::{Completion, OpKind, classify};

/// How clients reach the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClientMode {
    /// The replica-set URI: the driver discovers the set and follows the primary.
    #[default]
    ReplicaSet,
    /// A direct connection to one member per worker thread.
    Direct,
    /// Every router of a sharded cluster (the endpoints are the routers): the driver spreads operations
    /// over them and leaves one that fails.
    Mongos,
}

impl ClientMode {
    /// Parses `replica-set` or `direct`.
    pub fn from_name(name: &str) -> Option<ClientMode> {
        match name {
            "replica-set" | "rs" => Some(ClientMode::ReplicaSet),
            "direct" => Some(ClientMode::Direct),
            "mongos" => Some(ClientMode::Mongos),
            _ => None,
        }
    }
}

/// Connection settings of every client in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    pub mode: ClientMode,
    /// `majority` or a number of members.
    pub write_concern: String,
    /// `local`, `available`, `majority`, `linearizable` or `snapshot`.
    pub read_concern: String,
    /// `primary`, `primaryPreferred`, `secondary`, `secondaryPreferred` or `nearest`.
    pub read_preference: String,
    /// Deadline of one operation (and of server selection); past it the operation is `info`.
    pub op_timeout: Duration,
    /// Database the workloads use.
    pub database: String,
}

/// Where the members are.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub repl_set: String,
    /// `(name, port)` per member, in config order; all on 127.0.0.1.
    pub members: Vec<(String, u16)>,
}

/// The client could not be set up.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("bad client settings: {0}")]
    Settings(String),
    #[error("cannot create the driver client: {0}")]
    Driver(#[from] mongodb::error::Error),
}

/// One logical process's connection.
pub struct Session {
    client: Client,
    database: String,
    served_by: Arc<Mutex<Option<String>>>,
    op_timeout: Duration,
}

impl Session {
    /// Connects for worker `thread` (used to pick the member in direct mode).
    pub async fn connect(spec: &ClientSpec, endpoints: &Endpoints, thread: usize) -> Result<Session, ClientError> {
        let uri = connection_uri(spec, endpoints, thread)?;
        let mut options = ClientOptions::parse(&uri).await?;
        let names: HashMap<String, String> = endpoints
            .members
            .iter()
            .map(|(name, port)| (format!("127.0.0.1:{port}"), name.clone()))
            .collect();
        let served_by = Arc::new(Mutex::new(None));
        let sink = served_by.clone();
        // The member is taken from the pool's check-out event, not from command events: the driver builds a
        // command event by parsing the whole command and reply into `Document`s, which cost the harness more
        // CPU than the rest of the operation (#14); a check-out carries the address alone. Operations run one
        // at a time per client and monitors have connections of their own, so the last check-out is the
        // member the operation's last command went to.
        options.cmap_event_handler = Some(mongodb::event::EventHandler::callback(move |event: CmapEvent| {
            let CmapEvent::ConnectionCheckedOut(out) = event else {
                return;
            };
            let address = out.address.to_string();
            let name = names.get(&address).cloned().unwrap_or(address);
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(name);
            }
        }));
        let client = Client::with_options(options)?;
        Ok(Session {
            client,
            database: spec.database.clone(),
            served_by,
            op_timeout: spec.op_timeout,
        })
    }

    /// A collection of the workload database (concerns come from the URI).
    pub fn collection(&self, name: &str) -> Collection<Document> {
        self.client.database(&self.database).collection(name)
    }

    /// Runs `operation` under the deadline; returns its result (or `None` on timeout) and the member that
    /// served its last command, when known.
    pub async fn run<T>(
        &self,
        operation: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> (Option<mongodb::error::Result<T>>, Option<String>) {
        if let Ok(mut slot) = self.served_by.lock() {
            *slot = None;
        }
        let result = tokio::time::timeout(self.op_timeout, operation.into_future())
            .await
            .ok();
        let node = self.served_by.lock().ok().and_then(|mut slot| slot.take());
        (result, node)
    }

    /// Closes the driver's connections and monitors.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.shutdown()).await;
    }
}

/// The URI for a client: concerns and timeouts as URI options, retries off so outcomes stay unambiguous.
pub fn connection_uri(spec: &ClientSpec, endpoints: &Endpoints, thread: usize) -> Result<String, ClientError> {
    if endpoints.members.is_empty() {
        return Err(ClientError::Settings("no members".into()));
    }
    let valid_word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_word(&spec.write_concern) || !valid_word(&spec.read_concern) || !valid_word(&spec.read_preference) {
        return Err(ClientError::Settings(format!(
            "write concern {:?}, read concern {:?} and read preference {:?} must be single words",
            spec.write_concern, spec.read_concern, spec.read_preference
        )));
    }
    let timeout_ms = spec.op_timeout.as_millis().max(1);
    let common = format!(
        "w={}&readConcernLevel={}&readPreference={}&retryWrites=false&retryReads=false\
         &serverSelectionTimeoutMS={timeout_ms}&connectTimeoutMS={timeout_ms}&heartbeatFrequencyMS=500",
        spec.write_concern, spec.read_concern, spec.read_preference
    );
    Ok(match spec.mode {
        ClientMode::ReplicaSet => {
            let hosts: Vec<String> = endpoints
                .members
                .iter()
                .map(|(_, p)| format!("127.0.0.1:{p}"))
                .collect();
            format!(
                "mongodb://{}/?replicaSet={}&{common}",
                hosts.join(","),
                endpoints.repl_set
            )
        }
        ClientMode::Mongos => {
            let hosts: Vec<String> = endpoints
                .members
                .iter()
                .map(|(_, p)| format!("127.0.0.1:{p}"))
                .collect();
            format!("mongodb://{}/?{common}", hosts.join(","))
        }
        ClientMode::Direct => {
            let (_, port) = &endpoints.members[thread % endpoints.members.len()];
            format!("mongodb://127.0.0.1:{port}/?directConnection=true&{common}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: ClientMode) -> ClientSpec {
        ClientSpec {
            mode,
            write_concern: "majority".into(),
            read_concern: "linearizable".into(),
            read_preference: "primary".into(),
            op_timeout: Duration::from_secs(2),
            database: "faultline".into(),
        }
    }

    fn endpoints() -> Endpoints {
        Endpoints {
            repl_set: "rs0".into(),
            members: vec![("n1".into(), 27017), ("n2".into(), 27018), ("n3".into(), 27019)],
        }
    }

    #[test]
    fn replica_set_uri_lists_every_member_and_the_concerns() {
        let uri = connection_uri(&spec(ClientMode::ReplicaSet), &endpoints(), 4).expect("uri");
        assert!(uri.starts_with("mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0&"));
        assert!(uri.contains("w=majority") && uri.contains("readConcernLevel=linearizable"));
        assert!(uri.contains("retryWrites=false"));
    }

    #[test]
    fn direct_mode_binds_thread_t_to_member_t_mod_n() {
        let uri = connection_uri(&spec(ClientMode::Direct), &endpoints(), 4).expect("uri");
        assert!(
            uri.starts_with("mongodb://127.0.0.1:27018/?directConnection=true"),
            "{uri}"
        );
    }

    #[test]
    fn mongos_mode_lists_every_router_without_a_replica_set() {
        let uri = connection_uri(&spec(ClientMode::Mongos), &endpoints(), 4).expect("uri");
        assert!(
            uri.starts_with("mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?w="),
            "{uri}"
        );
        assert!(
            !uri.contains("replicaSet") && !uri.contains("directConnection"),
            "{uri}"
        );
    }

    #[test]
    fn concerns_cannot_inject_uri_options() {
        let mut bad = spec(ClientMode::ReplicaSet);
        bad.write_concern = "1&tls=true".into();
        assert!(connection_uri(&bad, &endpoints(), 0).is_err());
    }
}
