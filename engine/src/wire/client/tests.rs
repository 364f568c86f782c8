//! The client against a scripted in-process server: replies, error replies, deadlines, closed connections,
//! and an oplog tail's `find`/`getMore` exchange.

use std::time::Duration;

use bson::{Document, doc};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::wire::encode_msg_reply;

/// What the scripted server does with one request.
enum Answer {
    Reply(Document),
    /// Never answer (the client's deadline must fire).
    Silence,
    /// Close the connection without answering.
    Close,
}

/// A server on a loopback port that answers each request of one connection with `script` (but not a
/// `moreToCome` one), and forwards the requests it got to the returned receiver.
async fn scripted_server(
    mut script: impl FnMut(&Document) -> Answer + Send + 'static,
) -> (String, mpsc::UnboundedReceiver<Document>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address").to_string();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut stream = BufReader::new(stream);
        while let Ok(Some((header, body))) = read_frame(&mut stream, MAX_MESSAGE_SIZE).await {
            let Ok(msg) = OpMsg::decode(&header, &body) else { return };
            let answer = script(&msg.body);
            let one_way = msg.more_to_come();
            let _ = seen.send(msg.body);
            if one_way {
                // As a server does: a `moreToCome` request gets no reply.
                continue;
            }
            match answer {
                Answer::Reply(reply) => {
                    let bytes = encode_msg_reply(7, header.request_id, &reply);
                    if stream.get_mut().write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Answer::Silence => {}
                Answer::Close => return,
            }
        }
    });
    (addr, requests)
}

const DEADLINE: Duration = Duration::from_secs(10);

async fn connect(addr: &str) -> Connection {
    Connection::connect(addr, DEADLINE)
        .await
        .expect("connect to the scripted server")
}

#[tokio::test]
async fn a_command_gets_its_reply_and_ok_0_becomes_a_command_error() {
    let (addr, mut requests) = scripted_server(|body| match body.get_str("ping") {
        Ok(_) => Answer::Reply(doc! {"ok": 0.0, "errmsg": "no", "code": 13}),
        Err(_) => Answer::Reply(doc! {"pong": true, "ok": 1}),
    })
    .await;
    let mut conn = connect(&addr).await;
    let reply = conn.command(&doc! {"ping": 1, "$db": "admin"}, DEADLINE).await;
    assert_eq!(reply.ok(), Some(doc! {"pong": true, "ok": 1}));
    assert_eq!(requests.recv().await, Some(doc! {"ping": 1, "$db": "admin"}));

    let failed = conn.command(&doc! {"ping": "x", "$db": "admin"}, DEADLINE).await;
    match failed {
        Err(ClientError::Command { code, message, reply }) => {
            assert_eq!((code, message.as_str()), (13, "no"));
            assert_eq!(reply.get_str("errmsg").ok(), Some("no"));
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    // The connection survives an error reply, and round_trip hands the error reply back as it is.
    let raw = conn.round_trip(&doc! {"ping": "y", "$db": "admin"}, DEADLINE).await;
    assert_eq!(raw.ok().and_then(|r| r.get_i32("code").ok()), Some(13));
    assert!(!conn.is_poisoned());
}

#[tokio::test]
async fn a_one_way_message_gets_no_reply_and_leaves_the_connection_in_step() {
    let (addr, mut requests) = scripted_server(|_| Answer::Reply(doc! {"ok": 1})).await;
    let mut conn = connect(&addr).await;
    let update = doc! {"replSetUpdatePosition": 1, "$db": "admin"};
    conn.send(&update, DEADLINE)
        .await
        .expect("a one-way message is written");
    conn.send(&update, DEADLINE).await.expect("and another");
    assert!(!conn.is_poisoned());
    assert_eq!(requests.recv().await, Some(update.clone()));
    assert_eq!(requests.recv().await, Some(update));
    // Had the messages not been marked `moreToCome`, the server's replies to them would be read here first
    // (answering other requests): the next command's reply is its own.
    let ping = doc! {"ping": 1, "$db": "admin"};
    let reply = conn.command(&ping, DEADLINE).await;
    assert_eq!(reply.ok(), Some(doc! {"ok": 1}));
    assert_eq!(requests.recv().await, Some(ping));
}

#[tokio::test]
async fn a_one_way_message_to_a_server_that_closed_the_connection_is_not_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address").to_string();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut stream = BufReader::new(stream);
        let first = read_frame(&mut stream, MAX_MESSAGE_SIZE).await;
        drop(stream);
        let _ = closed_tx.send(first.is_ok_and(|frame| frame.is_some()));
    });
    let mut conn = connect(&addr).await;
    let update = doc! {"replSetUpdatePosition": 1, "$db": "admin"};
    conn.send(&update, DEADLINE)
        .await
        .expect("the first message is written");
    assert_eq!(
        closed.await.ok(),
        Some(true),
        "the server read the first message and closed"
    );
    let second = conn.send(&update, DEADLINE).await;
    assert!(matches!(second, Err(ClientError::Closed)), "{second:?}");
    assert!(conn.is_poisoned());
}

#[tokio::test]
async fn a_reply_that_does_not_come_in_time_poisons_the_connection() {
    let (addr, _requests) = scripted_server(|_| Answer::Silence).await;
    let mut conn = connect(&addr).await;
    let late = conn
        .command(&doc! {"ping": 1, "$db": "admin"}, Duration::from_millis(50))
        .await;
    assert!(matches!(late, Err(ClientError::Timeout(_))), "{late:?}");
    assert!(conn.is_poisoned());
    let again = conn.command(&doc! {"ping": 1, "$db": "admin"}, DEADLINE).await;
    assert!(matches!(again, Err(ClientError::Poisoned)), "{again:?}");
}

#[tokio::test]
async fn a_connection_closed_before_the_reply_is_reported() {
    let (addr, _requests) = scripted_server(|_| Answer::Close).await;
    let mut conn = connect(&addr).await;
    let closed = conn.command(&doc! {"ping": 1, "$db": "admin"}, DEADLINE).await;
    assert!(
        matches!(closed, Err(ClientError::Closed | ClientError::Io(_))),
        "{closed:?}"
    );
}

#[tokio::test]
async fn connecting_to_a_port_nobody_listens_on_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address").to_string();
    drop(listener);
    let refused = Connection::connect(&addr, DEADLINE).await;
    assert!(
        matches!(refused, Err(ClientError::Connect { .. })),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn a_command_too_large_to_encode_is_refused_before_sending() {
    let (addr, _requests) = scripted_server(|_| Answer::Reply(doc! {"ok": 1})).await;
    let mut conn = connect(&addr).await;
    let huge = doc! {"insert": "c", "pad": "x".repeat(crate::wire::MAX_COMMAND_DOCUMENT_SIZE), "$db": "d"};
    let refused = conn.command(&huge, DEADLINE).await;
    assert!(matches!(refused, Err(ClientError::Encode(_))), "{refused:?}");
    assert!(!conn.is_poisoned(), "nothing was sent");
}

fn entry(ts: u32) -> Document {
    doc! {"ts": bson::Timestamp { time: ts, increment: 1 }, "op": "i", "o": {"_id": i64::from(ts)}}
}

/// [`entry`] as a tail returns it: the bytes the source sent.
fn raw_entry(ts: u32) -> RawDocumentBuf {
    RawDocumentBuf::try_from(&entry(ts)).expect("an entry encodes")
}

#[tokio::test]
async fn an_oplog_tail_opens_with_find_then_follows_with_get_more() {
    let mut get_mores = 0;
    let (addr, mut requests) = scripted_server(move |body| {
        let repl_data = doc! {"term": 2i64, "rbid": 5};
        if body.contains_key("find") {
            return Answer::Reply(
                doc! {"cursor": {"firstBatch": [entry(1)], "id": 42i64, "ns": "local.oplog.rs"},
                "$replData": repl_data, "ok": 1.0},
            );
        }
        get_mores += 1;
        let (batch, id) = match get_mores {
            1 => (vec![entry(2), entry(3)], 42i64),
            2 => (vec![], 42),
            _ => (vec![entry(4)], 0),
        };
        Answer::Reply(doc! {"cursor": {"nextBatch": batch, "id": id, "ns": "local.oplog.rs"},
        "$replData": repl_data, "$oplogQueryData": {"lastOpCommitted": 1}, "ok": 1.0})
    })
    .await;
    let mut spec = TailSpec::new(doc! {"ts": {"$gte": bson::Timestamp { time: 1, increment: 1 }}});
    spec.batch_size = 10;
    spec.await_time = Duration::from_millis(250);
    spec.repl_metadata = true;
    spec.projection = Some(doc! {"ts": 1});
    let (mut tail, first) = OplogTail::open(connect(&addr).await, spec)
        .await
        .expect("open the tail");
    assert_eq!(first.entries, vec![raw_entry(1)]);
    assert_eq!(first.rollback_id(), Some(5));
    assert_eq!(first.oplog_query_data, None);
    let find = requests.recv().await.unwrap_or_default();
    assert_eq!(find.get_str("find").ok(), Some("oplog.rs"));
    assert_eq!(find.get_str("$db").ok(), Some("local"));
    assert_eq!(find.get_bool("tailable").ok(), Some(true));
    assert_eq!(find.get_bool("awaitData").ok(), Some(true));
    assert_eq!(find.get_i32("batchSize").ok(), Some(10));
    assert_eq!(find.get_document("projection").ok(), Some(&doc! {"ts": 1}));
    assert_eq!(find.get_i32("$replData").ok(), Some(1));

    let second = tail.next_batch().await.expect("second batch");
    assert_eq!(second.entries, vec![raw_entry(2), raw_entry(3)]);
    assert_eq!(second.oplog_query_data, Some(doc! {"lastOpCommitted": 1}));
    let get_more = requests.recv().await.unwrap_or_default();
    assert_eq!(get_more.get_i64("getMore").ok(), Some(42));
    assert_eq!(get_more.get_str("collection").ok(), Some("oplog.rs"));
    assert_eq!(get_more.get_i64("maxTimeMS").ok(), Some(250));
    assert_eq!(get_more.get_i32("$replData").ok(), Some(1));

    let empty = tail.next_batch().await.expect("an empty batch after the await time");
    assert!(empty.entries.is_empty());
    assert!(tail.is_open());
    let last = tail.next_batch().await.expect("last batch");
    assert_eq!(last.entries, vec![raw_entry(4)]);
    assert!(!tail.is_open());
    assert!(matches!(tail.next_batch().await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn dropping_a_pending_get_more_leaves_the_tail_unusable() {
    let (addr, _requests) = scripted_server(|body| {
        if body.contains_key("find") {
            Answer::Reply(doc! {"cursor": {"firstBatch": [], "id": 9i64, "ns": "local.oplog.rs"}, "ok": 1})
        } else {
            Answer::Silence
        }
    })
    .await;
    let (mut tail, first) = OplogTail::open(connect(&addr).await, TailSpec::new(Document::new()))
        .await
        .expect("open the tail");
    assert!(first.entries.is_empty());
    assert!(first.repl_data.is_none());
    // Cancel the getMore once it is on the wire: the reply may still come, so the connection is out of step.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), tail.next_batch()).await;
    assert!(cancelled.is_err(), "the silent server cannot have answered");
    assert!(tail.channel().is_poisoned());
    assert!(matches!(tail.next_batch().await, Err(ClientError::Poisoned)));
}

#[test]
fn reply_ok_accepts_one_in_every_numeric_type() {
    for ok in [doc! {"ok": 1.0}, doc! {"ok": 1}, doc! {"ok": 1i64}, doc! {"ok": true}] {
        assert!(reply_ok(&ok), "{ok}");
    }
    for not in [doc! {"ok": 0.0}, doc! {"ok": 0}, doc! {}, doc! {"ok": "1"}] {
        assert!(!reply_ok(&not), "{not}");
    }
}

/// A channel without a socket: answers each command from a list, and records the commands.
struct ScriptedChannel {
    replies: std::collections::VecDeque<Document>,
    seen: Vec<Document>,
}

/// The scripted channel's own error type, as a member's network has one.
#[derive(Debug)]
enum ChannelError {
    Refused(Document),
    Client(String),
}

impl From<ClientError> for ChannelError {
    fn from(err: ClientError) -> ChannelError {
        ChannelError::Client(err.to_string())
    }
}

impl CommandChannel for ScriptedChannel {
    type Error = ChannelError;

    fn raw_command<'a>(
        &'a mut self,
        body: &'a Document,
        _timeout: Duration,
    ) -> impl std::future::Future<Output = Result<RawDocumentBuf, ChannelError>> + Send + 'a {
        self.seen.push(body.clone());
        let reply = self.replies.pop_front().unwrap_or_default();
        async move {
            if reply_ok(&reply) {
                RawDocumentBuf::try_from(&reply).map_err(|e| ChannelError::Client(e.to_string()))
            } else {
                Err(ChannelError::Refused(reply))
            }
        }
    }
}

#[tokio::test]
async fn an_oplog_tail_runs_over_any_command_channel_and_keeps_its_errors() {
    let channel = ScriptedChannel {
        replies: [
            doc! {"cursor": {"firstBatch": [entry(1)], "id": 3i64}, "$replData": {"rbid": 2}, "ok": 1},
            doc! {"ok": 0, "code": 43, "errmsg": "cursor not found"},
            doc! {"cursor": {"nextBatch": [entry(2)], "id": 0i64}, "ok": 1},
        ]
        .into(),
        seen: Vec::new(),
    };
    let mut spec = TailSpec::new(doc! {"ts": {"$gte": bson::Timestamp { time: 1, increment: 1 }}});
    spec.repl_metadata = true;
    let (mut tail, first) = OplogTail::open(channel, spec).await.expect("open the tail");
    assert_eq!((first.rollback_id(), first.entries), (Some(2), vec![raw_entry(1)]));
    match tail.next_batch().await {
        Err(ChannelError::Refused(reply)) => assert_eq!(reply.get_i32("code").ok(), Some(43)),
        other => panic!("expected the channel's own error, got {other:?}"),
    }
    let last = tail.next_batch().await.expect("the last batch");
    assert_eq!(last.entries, vec![raw_entry(2)]);
    assert!(
        matches!(tail.next_batch().await, Err(ChannelError::Client(message)) if message.contains("closed")),
        "the cursor is closed"
    );
    let seen = &tail.channel().seen;
    assert_eq!(seen.len(), 3, "nothing is sent once the cursor is closed");
    assert_eq!(seen[0].get_str("find").ok(), Some("oplog.rs"));
    assert_eq!(seen[2].get_i64("getMore").ok(), Some(3));
}
