//! `faultline cluster --shards 2 --mongos 2`: one command starts the config servers, two shards and two
//! routers, adds the shards, prints the routers' URI and a line per component, serves a driver, and stops
//! everything on Ctrl-C.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bson::{Document, doc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::bin;

/// The first of `count` consecutive free ports below the kernel's ephemeral range, so that the ports other
/// tests get from the OS (`free_port`) never fall inside the run.
fn port_run(count: u16) -> u16 {
    let mut candidate = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    loop {
        let free = (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", candidate + i)).is_ok());
        if free {
            return candidate;
        }
        candidate = if candidate > 32_000 { 20_000 } else { candidate + count };
    }
}

#[tokio::test]
async fn one_command_starts_a_sharded_cluster_that_drivers_use() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let base = port_run(5);
    let mut child = Command::new(bin())
        .args([
            "cluster",
            "--shards",
            "2",
            "--nodes",
            "1",
            "--mongos",
            "2",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !printed.iter().any(|l: &String| l.contains("press Ctrl-C")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines_rx
            .recv_timeout(left)
            .map_err(|_| anyhow::anyhow!("the cluster did not come up; it printed: {printed:#?}"))?;
        printed.push(line);
    }
    let uri = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("uri: "))
        .expect("a uri line")
        .to_string();
    assert_eq!(uri, format!("mongodb://127.0.0.1:{},127.0.0.1:{}/", base, base + 1));
    assert_eq!(
        printed.iter().filter(|l| l.contains("up (mongos)")).count(),
        2,
        "{printed:#?}"
    );
    assert_eq!(
        printed.iter().filter(|l| l.contains("PRIMARY")).count(),
        3,
        "{printed:#?}"
    );

    let client = mongodb::Client::with_uri_str(&uri).await?;
    let admin = client.database("admin");
    let shards = admin.run_command(doc! {"listShards": 1}).await?;
    assert_eq!(shards.get_array("shards")?.len(), 2, "{shards}");
    admin
        .run_command(doc! {"shardCollection": "app.events", "key": {"user": "hashed"}})
        .await?;
    let events = client.database("app").collection::<Document>("events");
    let docs: Vec<Document> = (0..200).map(|i| doc! {"user": format!("u{i}"), "n": i}).collect();
    events.insert_many(docs).await?;
    assert_eq!(events.count_documents(doc! {}).await?, 200);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT)?;
    let status = child.wait()?;
    assert_eq!(status.code(), Some(0), "{status:?}");
    let routers_left = faultline_tests::cluster::processes_mentioning(&dir.path().display().to_string());
    assert!(routers_left.is_empty(), "processes left running: {routers_left:?}");
    Ok(())
}
