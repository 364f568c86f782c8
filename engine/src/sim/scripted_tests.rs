//! Scripted scenarios on the simulation's real members: faults placed at chosen moments (a link cut the
//! instant a rollback ends) that random schedules reach only rarely. Each waits for conditions on
//! simulated time, never for a fixed while.

use super::*;
use crate::repl::state::MemberState;

/// Polls `ready` every simulated millisecond until it holds; panics naming `what` after `within`.
async fn wait_until(sim: &Simulation<'_>, what: &str, within: Duration, ready: impl Fn(&Simulation<'_>) -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !ready(sim) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}:\n{}",
            sim.roles()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Simulation<'_> {
    fn node(&self, index: usize) -> Arc<Node> {
        self.slots[index].node.clone().expect("the member is running")
    }

    fn writable_primary(&self, among: &[usize]) -> Option<usize> {
        among
            .iter()
            .copied()
            .find(|&i| self.slots[i].node.as_ref().is_some_and(|n| n.member.role().writable))
    }

    /// Cuts every link of member `index`.
    fn isolate(&self, index: usize) {
        for other in (0..self.slots.len()).filter(|&o| o != index) {
            self.fabric.cut(&host(index), &host(other));
        }
    }

    fn roles(&self) -> String {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.node.as_ref().map(|n| (i, n)))
            .map(|(i, n)| {
                let role = n.member.role();
                format!(
                    "  {i}: {} term {} written {:?} sync source {:?}",
                    role.state.as_str(),
                    role.term,
                    n.storage.positions().last_written,
                    role.sync_source
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Inserts `_id: key` into the workload's collection on member `index` and returns whether it was
    /// acknowledged.
    async fn insert(&self, index: usize, key: i64, write_concern: Document) -> bool {
        let reply = call(
            &self.node(index),
            &self.client,
            doc! {"insert": "c", "documents": [{"_id": key, "by": index as i32}], "writeConcern": write_concern,
            "$db": "sim"},
        )
        .await;
        is_ok(&reply) && !reply.contains_key("writeErrors") && !reply.contains_key("writeConcernError")
    }
}

fn scripted<F>(scenario: F)
where
    F: for<'a> AsyncFnOnce(&'a mut Simulation<'_>),
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = SimOptions {
            kills: false,
            ..SimOptions::new(1)
        };
        let mut sim = Simulation::start(&options, dir.path()).await.expect("the set starts");
        scenario(&mut sim).await;
        sim.kill_all();
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// The deposed primary A, the third member Q, and A's rollback id before its rollback against P.
struct RolledBackAgainstDoomedPrimary {
    a: usize,
    q: usize,
    rbid_before: i32,
}

/// Member A, a deposed primary, rolls back against P, a primary of a later term whose newest write is on no
/// majority. A's diverged entries created the workload's collection, so its rollback refetches that
/// collection whole from P, P's doomed write included, and A must stay RECOVERING until it holds P's newest
/// entry (min-valid). A is cut from P the instant its rollback ends, before it fetches anything.
async fn roll_back_against_a_doomed_primary(sim: &mut Simulation<'_>) -> RolledBackAgainstDoomedPrimary {
    let all = [0, 1, 2];
    let within = Duration::from_secs(30);
    wait_until(
        sim,
        "a first primary and two secondaries level with it",
        within,
        |sim| {
            sim.writable_primary(&all).is_some()
                && all.iter().all(|&i| {
                    let node = sim.node(i);
                    node.member.role().state.readable()
                        && node.storage.positions().last_written == sim.node(0).storage.positions().last_written
                })
        },
    )
    .await;
    let a = sim.writable_primary(&all).expect("a primary");
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != a).collect();

    sim.isolate(a);
    assert!(
        sim.insert(a, 1, doc! {"w": 1}).await,
        "the isolated primary takes a w:1 write"
    );
    wait_until(sim, "a primary on the majority side", within, |sim| {
        sim.writable_primary(&others).is_some()
    })
    .await;
    let p = sim.writable_primary(&others).expect("a primary");
    let q = others.iter().copied().find(|&i| i != p).expect("a third member");

    sim.fabric.cut(&host(p), &host(q));
    assert!(
        sim.insert(p, 2, doc! {"w": 1}).await,
        "P takes a write no majority will have"
    );
    let rbid_before = sim.node(a).member.rbid();
    sim.fabric.mend(&host(a), &host(p));
    wait_until(sim, "A's rollback against P", within, |sim| {
        sim.node(a).member.rbid() != rbid_before
    })
    .await;
    sim.fabric.cut(&host(a), &host(p));
    assert_eq!(
        sim.node(a).member.role().state,
        MemberState::Recovering,
        "A is below min-valid"
    );
    RolledBackAgainstDoomedPrimary { a, q, rbid_before }
}

/// Then A meets Q, primary of a newer term still: Q's history never had min-valid, so the documents A
/// refetched are from a branch that died. A must not take Q's newer entries as reaching min-valid (they
/// only sort after it); it must roll back again, against Q.
#[test]
fn a_recovering_member_does_not_keep_documents_of_a_branch_that_died() {
    scripted(async |sim| {
        let RolledBackAgainstDoomedPrimary { a, q, rbid_before, .. } = roll_back_against_a_doomed_primary(sim).await;
        sim.fabric.mend(&host(a), &host(q));
        wait_until(sim, "Q elected with A's vote", Duration::from_secs(30), |sim| {
            sim.writable_primary(&[q]).is_some()
        })
        .await;
        assert!(
            sim.insert(q, 3, doc! {"w": "majority", "wtimeout": 10_000}).await,
            "Q's write reaches A"
        );
        assert_eq!(
            sim.node(a).member.rbid(),
            rbid_before + 2,
            "A rolled back again, against Q"
        );

        sim.fabric.heal();
        let violation = sim.converge().await;
        assert_eq!(violation, None, "after healing:\n{}", sim.roles());
    });
}

/// A restart below min-valid comes back RECOVERING (the record is durable), not SECONDARY on data that
/// mixes two histories, and the set converges once healed.
#[test]
fn a_member_restarted_below_min_valid_stays_recovering() {
    scripted(async |sim| {
        let RolledBackAgainstDoomedPrimary { a, .. } = roll_back_against_a_doomed_primary(sim).await;
        sim.kill(a);
        sim.boot(a).await.expect("A restarts");
        assert_eq!(
            sim.node(a).member.role().state,
            MemberState::Recovering,
            "A restarted below min-valid:\n{}",
            sim.roles()
        );
        sim.fabric.heal();
        let violation = sim.converge().await;
        assert_eq!(violation, None, "after healing:\n{}", sim.roles());
    });
}
