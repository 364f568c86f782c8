//! Bad input from the network: malformed frames close the connection, malformed content gets an error
//! reply, nothing crashes or hangs, and other clients keep being served.

use std::time::Duration;

use bson::doc;
use faultline_tests::{NodeProcess, raw_command, read_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bin;

/// Reads until the server closes the connection (or fails the test after a timeout).
async fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: the server should close the connection");
}

fn header(len: i32, op_code: i32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [len, 7, 0, op_code] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_never_take_the_server_down() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    let port = node.port;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("a length below the header size", header(4, 2013)),
        ("a length above the message limit", header(100_000_000, 2013)),
        ("a negative length", header(-5, 2013)),
        ("an unknown opcode", [header(20, 9999), vec![0; 4]].concat()),
        ("a legacy OP_INSERT", [header(20, 2002), vec![0; 4]].concat()),
        (
            "an unknown OP_MSG section kind",
            [header(26, 2013), vec![0, 0, 0, 0, 7], vec![5, 0, 0, 0, 0]].concat(),
        ),
        (
            "unknown required flag bits",
            [header(26, 2013), vec![4, 0, 0, 0, 0], vec![5, 0, 0, 0, 0]].concat(),
        ),
    ];
    let mut random = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                random as u8
            })
            .collect();
        cases.push(("random bytes", bytes));
    }
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        expect_closed(&mut stream, what).await;
        let alive = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
        assert_eq!(alive.get_f64("ok")?, 1.0, "after {what}");
    }

    // A message cut short and left hanging doesn't block anyone else.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await?;
    stalled.write_all(&header(1000, 2013)).await?;
    let alive = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await?;
    assert_eq!(alive.get_f64("ok")?, 1.0);
    drop(stalled);
    Ok(())
}

/// Well-framed but invalid content gets an error reply on a connection that stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_content_gets_an_error_reply() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).await?;
    // OP_MSG whose body claims 12 bytes but holds a broken element.
    let body = [12u8, 0, 0, 0, 0x02, b'a', 0, 0xff, 0xff, 0xff, 0x7f, 0];
    let msg = [
        header(16 + 4 + 1 + body.len() as i32, 2013),
        vec![0, 0, 0, 0, 0],
        body.to_vec(),
    ]
    .concat();
    stream.write_all(&msg).await?;
    let reply = read_reply(&mut stream).await?;
    assert_eq!(reply.get_f64("ok")?, 0.0, "{reply}");
    // The connection still works.
    faultline_tests::send_op_msg(&mut stream, 2, &doc! {"ping": 1, "$db": "admin"}).await?;
    assert_eq!(read_reply(&mut stream).await?.get_f64("ok")?, 1.0);
    // A command without $db.
    faultline_tests::send_op_msg(&mut stream, 3, &doc! {"ping": 1}).await?;
    let reply = read_reply(&mut stream).await?;
    assert_eq!(reply.get_f64("ok")?, 0.0, "{reply}");
    Ok(())
}

/// The legacy OP_QUERY handshake the Node driver and mongosh send first gets an OP_REPLY, and so does any
/// other command on `<db>.$cmd` (old drivers such as the 3.x Java driver send `buildinfo` and
/// `getlasterror` that way); an OP_QUERY find on a collection is refused with QueryFailure.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_op_query_handshake() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    let query = |request_id: i32, body: bson::Document| -> anyhow::Result<Vec<u8>> {
        let doc = body.to_vec()?;
        let mut payload = Vec::new();
        payload.extend_from_slice(&0i32.to_le_bytes());
        payload.extend_from_slice(b"admin.$cmd\0");
        payload.extend_from_slice(&0i32.to_le_bytes());
        payload.extend_from_slice(&(-1i32).to_le_bytes());
        payload.extend_from_slice(&doc);
        let mut msg = header(16 + payload.len() as i32, 2004);
        msg[4..8].copy_from_slice(&request_id.to_le_bytes());
        msg.extend_from_slice(&payload);
        Ok(msg)
    };
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).await?;
    stream
        .write_all(&query(
            1,
            doc! {"ismaster": 1, "helloOk": true, "client": {"driver": {"name": "nodejs"}}},
        )?)
        .await?;
    let reply = read_reply(&mut stream).await?;
    assert_eq!(reply.get_i32("maxWireVersion")?, 21, "{reply}");
    assert!(!reply.get_bool("ismaster")?, "uninitialised: not primary");
    stream.write_all(&query(2, doc! {"buildinfo": 1})?).await?;
    let build = read_reply(&mut stream).await?;
    assert_eq!(build.get_str("version")?, "7.0.0", "{build}");
    stream.write_all(&query(3, doc! {"getlasterror": 1})?).await?;
    let gle = read_reply(&mut stream).await?;
    assert_eq!(gle.get_f64("ok")?, 1.0, "{gle}");
    assert!(gle.get_i64("connectionId").is_ok(), "{gle}");
    // A write on an uninitialised member, from a client that never said helloOk: "not master", code 10107.
    stream
        .write_all(&query(4, doc! {"insert": "c", "documents": [{"x": 1}]})?)
        .await?;
    let refused = read_reply(&mut stream).await?;
    assert_eq!(refused.get_i32("code")?, 10107, "{refused}");
    // This client said helloOk, so it hears the modern wording.
    assert_eq!(refused.get_str("errmsg")?, "not primary", "{refused}");

    let mut old = TcpStream::connect(("127.0.0.1", node.port)).await?;
    old.write_all(&query(1, doc! {"isMaster": 1})?).await?;
    read_reply(&mut old).await?;
    old.write_all(&query(2, doc! {"insert": "c", "documents": [{"x": 1}]})?)
        .await?;
    let refused = read_reply(&mut old).await?;
    assert_eq!(refused.get_i32("code")?, 10107, "{refused}");
    assert_eq!(
        refused.get_str("errmsg")?,
        "not master",
        "old drivers match on this text: {refused}"
    );

    let mut payload = Vec::new();
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(b"test.c\0");
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(&(-1i32).to_le_bytes());
    payload.extend_from_slice(&doc! {"x": 1}.to_vec()?);
    let mut msg = header(16 + payload.len() as i32, 2004);
    msg.extend_from_slice(&payload);
    stream.write_all(&msg).await?;
    let refused = read_reply(&mut stream).await?;
    assert_eq!(refused.get_i32("code")?, 352, "an OP_QUERY find is refused: {refused}");
    Ok(())
}
