//! One client connection to the router: read a frame, decode it, run the command, write the reply. OP_MSG
//! for everything modern, OP_QUERY on `<db>.$cmd` for old handshakes (answered with an OP_REPLY). A framing
//! error closes the connection; a bad message gets an error reply.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bson::Document;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Router;
use super::commands;
use crate::wire::{self, Request};

pub async fn accept_loop(listener: TcpListener, router: Arc<Router>, stop: watch::Receiver<bool>) {
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = router.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    tokio::spawn(serve(stream, id, router.clone(), stop.clone()));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn serve(stream: TcpStream, id: i64, router: Arc<Router>, mut stop: watch::Receiver<bool>) {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut next_reply_id: i32 = 1;
    loop {
        let frame = tokio::select! {
            _ = crate::shutdown::stopped(&mut stop) => break,
            frame = wire::read_frame(&mut reader, wire::MAX_MESSAGE_SIZE) => frame,
        };
        let Ok(Some((header, body))) = frame else { break };
        next_reply_id = next_reply_id.wrapping_add(1);
        let reply = match wire::decode_request(&header, &body) {
            Ok(Request::Msg(msg)) => {
                let more_to_come = msg.more_to_come();
                let reply = commands::run(&router, id, msg.body, false).await;
                if more_to_come {
                    continue;
                }
                wire::encode_msg_reply(next_reply_id, header.request_id, &reply)
            }
            Ok(Request::Query(query)) => {
                let mut body: Document = query.query.clone();
                body.insert("$db", query.database().to_string());
                let reply = commands::run(&router, id, body, true).await;
                wire::encode_op_reply(
                    next_reply_id,
                    header.request_id,
                    wire::reply_flags::AWAIT_CAPABLE,
                    &reply,
                )
            }
            Err(err) => match wire::error_response(&header, &body, &err, next_reply_id) {
                wire::ErrorAction::Reply(bytes) => bytes,
                wire::ErrorAction::Ignore => continue,
                wire::ErrorAction::Close => break,
            },
        };
        if writer.write_all(&reply).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
}
