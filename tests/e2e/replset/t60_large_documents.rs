//! Documents close to the 16 MiB BSON limit replicate: reply batches (the oplog fetcher's and a client's)
//! stay under MongoDB's 16 MiB reply limit whatever the document sizes, with at least one document each.

use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::options::{Acknowledgment, ReadPreference, SelectionCriteria, WriteConcern};

use crate::*;

const MIB: usize = 1024 * 1024;

fn big(id: i32, bytes: usize) -> Document {
    doc! {"_id": id, "pad": "x".repeat(bytes)}
}

/// One `insert_many` of documents from 5 MiB to just under 16 MiB: several per write, so the oplog fetcher's
/// batches would hold several if nothing stopped them; every member ends with the same data and a client reads
/// them all back from a secondary in batches that fit.
#[tokio::test(flavor = "multi_thread")]
async fn documents_close_to_16_mib_replicate_and_read_back() -> anyhow::Result<()> {
    let nodes = start_members(3, |_| vec![]).await?;
    let members: Vec<Document> = nodes.iter().enumerate().map(|(i, n)| member(i as i32, n)).collect();
    // Elections are not this test's subject: with the 1 s timeout of `config`, a heartbeat answered late while
    // a debug build moves 16 MiB documents beside the rest of the suite once made a secondary stand, and the
    // primary stepped down under the write (11602).
    let mut config = config(members);
    config.insert(
        "settings",
        doc! {"electionTimeoutMillis": 10_000, "heartbeatIntervalMillis": 200},
    );
    initiate(&nodes, config).await?;
    let refs: Vec<&faultline_tests::NodeProcess> = nodes.iter().collect();
    let client = mongodb::Client::with_uri_str(set_uri(&refs)).await?;
    let majority = WriteConcern::builder().w(Acknowledgment::Majority).build();
    let coll = client.database("big").collection::<Document>("c");

    // Two 10 MB documents: the minimal case.
    coll.insert_many(vec![big(1, 10_000_000), big(2, 10_000_000)])
        .write_concern(majority.clone())
        .await?;
    // Near the limit, and smaller ones that several fit in one 16 MiB batch.
    let near = 16 * MIB - 1024;
    coll.insert_many(vec![
        big(3, near),
        big(4, near),
        big(5, 5 * MIB),
        big(6, 5 * MIB),
        big(7, 5 * MIB),
        big(8, near),
    ])
    .write_concern(majority.clone())
    .await?;
    wait_same_data(&refs, "big").await?;

    let docs: Vec<Document> = coll
        .find(doc! {})
        .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Secondary {
            options: None,
        }))
        .batch_size(100)
        .await?
        .try_collect()
        .await?;
    let sizes: Vec<(i32, usize)> = docs
        .iter()
        .map(|d| {
            (
                d.get_i32("_id").unwrap_or(-1),
                d.get_str("pad").map(str::len).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        vec![
            (1, 10_000_000),
            (2, 10_000_000),
            (3, near),
            (4, near),
            (5, 5 * MIB),
            (6, 5 * MIB),
            (7, 5 * MIB),
            (8, near)
        ]
    );

    // The raw batches: never over 16 MiB of documents, never empty while documents remain.
    let primary = wait_for_primary(&nodes, &[]).await?;
    let port = nodes[(primary + 1) % nodes.len()].port;
    let first = faultline_tests::raw_command(
        port,
        doc! {"find": "c", "$db": "big", "batchSize": 100, "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await?;
    let cursor = first.get_document("cursor")?;
    let mut batch_sizes = vec![batch_bytes(cursor.get_array("firstBatch")?)];
    let mut id = cursor.get_i64("id")?;
    while id != 0 {
        let more = faultline_tests::raw_command(
            port,
            doc! {"getMore": id, "collection": "c", "$db": "big", "$readPreference": {"mode": "secondaryPreferred"}},
        )
        .await?;
        let cursor = more.get_document("cursor")?;
        batch_sizes.push(batch_bytes(cursor.get_array("nextBatch")?));
        id = cursor.get_i64("id")?;
    }
    assert!(
        batch_sizes
            .iter()
            .all(|(n, bytes)| *n >= 1 && (*n == 1 || *bytes <= 16 * MIB)),
        "{batch_sizes:?}"
    );
    assert_eq!(batch_sizes.iter().map(|(n, _)| n).sum::<usize>(), 8, "{batch_sizes:?}");
    // The three 5 MiB documents share a batch.
    assert!(batch_sizes.iter().any(|(n, _)| *n >= 2), "{batch_sizes:?}");
    Ok(())
}

fn batch_bytes(batch: &[bson::Bson]) -> (usize, usize) {
    let bytes = batch
        .iter()
        .filter_map(|d| d.as_document())
        .map(|d| d.to_vec().map(|v| v.len()).unwrap_or(0))
        .sum();
    (batch.len(), bytes)
}
