//! The member's view of the network to its peers, as a small interface: run one command on a member, or
//! open a dedicated channel to it (the oplog fetcher's tailable cursor, initial sync, rollback).
//!
//! Production uses [`Peers`] (OP_MSG over TCP, with the peer route table); the in-process simulation
//! (`crate::sim`) routes the same commands straight into other members' command layers, with faults. An open
//! channel is a [`CommandChannel`] too, so the oplog fetcher tails over it with the wire client's
//! [`crate::wire::client::OplogTail`] whichever network is underneath.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bson::Document;
use bson::raw::RawDocumentBuf;

use super::peers::{PeerConnection, Peers};
use crate::error::{Error, Result};
use crate::wire::client::CommandChannel;

/// A boxed future borrowed from its receiver (the trait stays object-safe).
pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One open channel to a member, used for one command at a time.
pub trait PeerChannel: Send {
    /// Sends a command and waits for its reply (an `ok: 0` reply is returned as an error).
    fn command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, Document>;

    /// [`PeerChannel::command`], with the reply as raw BSON (the oplog fetcher reads its batches so). A
    /// channel that holds replies as documents encodes them.
    fn raw_command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, RawDocumentBuf> {
        Box::pin(async move {
            let reply = self.command(body, timeout).await?;
            RawDocumentBuf::try_from(&reply).map_err(|e| Error::internal(format!("cannot encode a reply: {e}")))
        })
    }
}

/// How a member reaches the other members, named by `host` as in the replica-set config.
pub trait PeerNetwork: Send + Sync {
    /// Runs one command on `host`; `purpose` names the kind of traffic (connections may be pooled by it).
    fn command<'a>(
        &'a self,
        host: &'a str,
        purpose: &'static str,
        body: &'a Document,
        timeout: Duration,
    ) -> NetFuture<'a, Document>;

    /// Sends one command to `host` that gets no reply (`moreToCome`); done once it is on its way. A network
    /// that has no one-way messages runs the command and drops its reply.
    fn send<'a>(
        &'a self,
        host: &'a str,
        purpose: &'static str,
        body: &'a Document,
        timeout: Duration,
    ) -> NetFuture<'a, ()> {
        Box::pin(async move { self.command(host, purpose, body, timeout).await.map(drop) })
    }

    /// Opens a dedicated channel to `host`.
    fn open<'a>(&'a self, host: &'a str, timeout: Duration) -> NetFuture<'a, Box<dyn PeerChannel>>;
}

impl PeerChannel for PeerConnection {
    fn command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, Document> {
        Box::pin(PeerConnection::command(self, body, timeout))
    }

    fn raw_command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, RawDocumentBuf> {
        Box::pin(PeerConnection::raw_command(self, body, timeout))
    }
}

impl PeerNetwork for Peers {
    fn command<'a>(
        &'a self,
        host: &'a str,
        purpose: &'static str,
        body: &'a Document,
        timeout: Duration,
    ) -> NetFuture<'a, Document> {
        Box::pin(Peers::command(self, host, purpose, body, timeout))
    }

    fn send<'a>(
        &'a self,
        host: &'a str,
        purpose: &'static str,
        body: &'a Document,
        timeout: Duration,
    ) -> NetFuture<'a, ()> {
        Box::pin(Peers::send(self, host, purpose, body, timeout))
    }

    fn open<'a>(&'a self, host: &'a str, timeout: Duration) -> NetFuture<'a, Box<dyn PeerChannel>> {
        Box::pin(async move {
            let conn = Peers::connect(self, host, timeout).await?;
            Ok(Box::new(conn) as Box<dyn PeerChannel>)
        })
    }
}

impl PeerChannel for Box<dyn PeerChannel> {
    fn command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, Document> {
        (**self).command(body, timeout)
    }

    fn raw_command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, RawDocumentBuf> {
        (**self).raw_command(body, timeout)
    }
}

impl<'c> CommandChannel for Box<dyn PeerChannel + 'c> {
    type Error = Error;

    fn raw_command<'a>(
        &'a mut self,
        body: &'a Document,
        timeout: Duration,
    ) -> impl Future<Output = Result<RawDocumentBuf>> + Send + 'a {
        PeerChannel::raw_command(&mut **self, body, timeout)
    }
}
