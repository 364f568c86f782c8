//! The handshake: what drivers and mongosh need to see before and after `rs.initiate()`.

use bson::doc;
use faultline_tests::{NodeProcess, raw_command};

use crate::bin;

/// Before initiation a member answers as an uninitialised replica-set member (drivers' RSGhost); after
/// `rs.initiate()` it is the PRIMARY of a one-member set, with the fields drivers rely on.
#[tokio::test(flavor = "multi_thread")]
async fn hello_before_and_after_initiate() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &["--replSet", "tutorial"]).await?;
    let ghost = raw_command(node.port, doc! {"hello": 1, "$db": "admin"}).await?;
    assert!(ghost.get_bool("isreplicaset")?);
    assert!(!ghost.get_bool("isWritablePrimary")?);
    assert!(
        ghost.get("setName").is_none(),
        "an uninitialised member has no set name: {ghost}"
    );
    assert_eq!(ghost.get_i32("maxWireVersion")?, 21);
    assert_eq!(ghost.get_i32("maxBsonObjectSize")?, 16 * 1024 * 1024);
    assert_eq!(ghost.get_i32("maxMessageSizeBytes")?, 48_000_000);
    assert_eq!(ghost.get_i32("logicalSessionTimeoutMinutes")?, 30);

    // Writes are refused until the set exists.
    let refused = raw_command(node.port, doc! {"insert": "c", "documents": [{"x": 1}], "$db": "test"}).await?;
    assert_eq!(refused.get_i32("code")?, 10107, "{refused}");

    node.initiate().await?;
    let hello = raw_command(node.port, doc! {"isMaster": 1, "helloOk": true, "$db": "admin"}).await?;
    let me = format!("127.0.0.1:{}", node.port);
    assert!(hello.get_bool("ismaster")?, "legacy name answers `ismaster`: {hello}");
    assert!(hello.get_bool("helloOk")?);
    assert_eq!(hello.get_str("setName")?, "tutorial");
    assert_eq!(hello.get_str("me")?, me);
    assert_eq!(hello.get_str("primary")?, me);
    assert_eq!(hello.get_array("hosts")?, &vec![bson::Bson::String(me.clone())]);
    assert_eq!(hello.get_object_id("electionId")?.to_hex()[..8], *"7fffffff");
    assert!(hello.get_document("lastWrite")?.get_document("opTime").is_ok());

    let again = raw_command(node.port, doc! {"replSetInitiate": {}, "$db": "admin"}).await?;
    assert_eq!(again.get_i32("code")?, 23, "second initiate: {again}");
    Ok(())
}

/// Awaitable hello: with the current topologyVersion it waits for maxAwaitTimeMS; with a stale one it
/// answers at once; initiation (a topology change) wakes a waiting hello.
#[tokio::test(flavor = "multi_thread")]
async fn awaitable_hello_waits_for_a_topology_change() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    let first = raw_command(node.port, doc! {"hello": 1, "$db": "admin"}).await?;
    let tv = first.get_document("topologyVersion")?.clone();

    let port = node.port;
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let reply = raw_command(
            port,
            doc! {"hello": 1, "topologyVersion": tv, "maxAwaitTimeMS": 20_000i64, "$db": "admin"},
        )
        .await;
        (reply, started.elapsed())
    });
    node.initiate().await?;
    let (reply, waited) = waiter.await?;
    let reply = reply?;
    assert!(
        waited < std::time::Duration::from_secs(15),
        "the change should wake the waiter, waited {waited:?}"
    );
    let counter = reply.get_document("topologyVersion")?.get_i64("counter")?;
    assert!(counter > first.get_document("topologyVersion")?.get_i64("counter")?);

    let stale = doc! {"processId": bson::oid::ObjectId::new(), "counter": 0i64};
    let started = std::time::Instant::now();
    raw_command(
        node.port,
        doc! {"hello": 1, "topologyVersion": stale, "maxAwaitTimeMS": 20_000i64, "$db": "admin"},
    )
    .await?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "another process id must answer at once"
    );
    Ok(())
}

/// Streaming monitoring (what the Node driver, mongoose and mongosh use): an awaitable hello sent with
/// `exhaustAllowed` is answered with `moreToCome`, and the server goes on answering without further requests,
/// each reply a response to the previous one, until the client closes; a topology change is streamed at once.
#[tokio::test(flavor = "multi_thread")]
async fn exhaust_hello_streams_replies_with_more_to_come() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = NodeProcess::start(bin(), &[]).await?;
    let first = raw_command(node.port, doc! {"hello": 1, "$db": "admin"}).await?;
    let tv = first.get_document("topologyVersion")?.clone();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", node.port)).await?;
    let body = doc! {"hello": 1, "topologyVersion": tv.clone(), "maxAwaitTimeMS": 100i64, "$db": "admin"};
    let exhaust_allowed = 1u32 << 16;
    let request = faultline_engine::wire::try_encode_msg(7, 0, exhaust_allowed, &body)?;
    stream.write_all(&request).await?;

    // Reads one OP_MSG: (requestID, responseTo, flags, body).
    async fn read_msg(stream: &mut tokio::net::TcpStream) -> anyhow::Result<(i32, i32, u32, bson::Document)> {
        let mut header = [0u8; 16];
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_exact(&mut header)).await??;
        let word = |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        anyhow::ensure!(word(12) == 2013, "expected OP_MSG, got opcode {}", word(12));
        let mut rest = vec![0u8; word(0) as usize - 16];
        stream.read_exact(&mut rest).await?;
        let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        Ok((word(4), word(8), flags, bson::Document::from_reader(&rest[5..])?))
    }

    let more_to_come = 1u32 << 1;
    let mut previous_request = 7;
    for i in 0..3 {
        let (request_id, response_to, flags, reply) = read_msg(&mut stream).await?;
        assert_eq!(reply.get_f64("ok")?, 1.0, "reply {i}: {reply}");
        assert_ne!(flags & more_to_come, 0, "reply {i} must carry moreToCome: {reply}");
        assert_eq!(response_to, previous_request, "reply {i} answers the previous message");
        previous_request = request_id;
    }
    // A topology change (initiation) is streamed without any request from the client.
    node.initiate().await?;
    let changed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let (_, _, _, reply) = read_msg(&mut stream).await?;
            if reply.get_bool("isWritablePrimary").unwrap_or(false) {
                return anyhow::Ok(reply);
            }
        }
    })
    .await??;
    assert!(changed.get_document("topologyVersion")?.get_i64("counter")? > tv.get_i64("counter")?);
    Ok(())
}

/// The introspection commands mongosh sends at start-up, and the error for unknown commands.
#[tokio::test(flavor = "multi_thread")]
async fn introspection_commands_and_unknown_commands() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &[]).await?;
    let build = raw_command(node.port, doc! {"buildInfo": 1, "$db": "admin"}).await?;
    assert!(build.get_str("version")?.starts_with("7.0"));
    let fcv = raw_command(
        node.port,
        doc! {"getParameter": 1, "featureCompatibilityVersion": 1, "$db": "admin"},
    )
    .await?;
    assert_eq!(
        fcv.get_document("featureCompatibilityVersion")?.get_str("version")?,
        "7.0"
    );
    let foo = raw_command(node.port, doc! {"getParameter": 1, "foo": 1, "$db": "admin"}).await?;
    assert_eq!(foo.get_f64("ok")?, 0.0);
    let log = raw_command(node.port, doc! {"getLog": "startupWarnings", "$db": "admin"}).await?;
    assert_eq!(log.get_array("log")?.len(), 0);
    for name in [
        "ping",
        "connectionStatus",
        "whatsmyuri",
        "hostInfo",
        "getCmdLineOpts",
        "serverStatus",
        "listDatabases",
    ] {
        let reply = raw_command(node.port, doc! {name: 1, "$db": "admin"}).await?;
        assert_eq!(reply.get_f64("ok")?, 1.0, "{name}: {reply}");
    }
    let opts = raw_command(node.port, doc! {"getCmdLineOpts": 1, "$db": "admin"}).await?;
    assert_eq!(
        opts.get_document("parsed")?.get_document("net")?.get_i32("port")?,
        i32::from(node.port)
    );
    let unknown = raw_command(node.port, doc! {"atlasVersion": 1, "$db": "admin"}).await?;
    assert_eq!(unknown.get_i32("code")?, 59);
    assert_eq!(unknown.get_str("codeName")?, "CommandNotFound");
    Ok(())
}

/// A mongod tutorial's YAML config file works as it is; bad flags are refused with exit code 254.
#[tokio::test(flavor = "multi_thread")]
async fn yaml_config_file_and_bad_flags() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = faultline_tests::free_port();
    let config = dir.path().join("mongod.conf");
    std::fs::write(
        &config,
        format!(
            "net:\n  port: {port}\n  bindIp: 127.0.0.1\nstorage:\n  dbPath: {}\nreplication:\n  replSetName: fromfile\n",
            dir.path().join("db").display()
        ),
    )?;
    let mut child = std::process::Command::new(bin())
        .args(["node", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let reply = faultline_tests::wait_until(faultline_tests::START_TIMEOUT, "the configured member", || async move {
        raw_command(port, doc! {"replSetInitiate": {}, "$db": "admin"})
            .await
            .ok()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let reply = reply?;
    assert_eq!(reply.get_f64("ok")?, 1.0, "{reply}");
    assert!(
        dir.path().join("db").join("faultline.redb").exists(),
        "dbPath from the file is used"
    );

    let bad = std::process::Command::new(bin())
        .args(["node", "--port", "banana"])
        .output()?;
    assert_eq!(bad.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--port"));
    std::fs::write(&config, "net:\n  port: [1, 2]\n")?;
    let bad = std::process::Command::new(bin())
        .args(["node", "--config"])
        .arg(&config)
        .output()?;
    assert_eq!(bad.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("net.port"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    Ok(())
}
