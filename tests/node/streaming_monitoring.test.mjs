// Follows the Node.js driver's "Monitoring" / server-discovery tutorial on a plain 3-member replica set of real
// `faultline node` processes: an application MongoClient on the replica-set URI, listening to SDAM heartbeat
// and connection-pool events, stays healthy for 30 s while it runs a light operation every ~200 ms: no failed
// heartbeat, no pool cleared, and the streaming (awaitable hello / exhaust) protocol in use (heartbeats that
// succeed with `awaited: true`), as against mongod.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as pause } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { installCleanup, startReplicaSet } from './lib/cluster.mjs';

installCleanup();

const WATCH_MS = 30_000;
const OP_EVERY_MS = 200;

test('a MongoClient on the replica-set URI stays healthy for 30 s: no failed heartbeats, no pool clears, streaming hello', { timeout: 150_000 }, async (t) => {
  const setupStart = performance.now();
  const { uri, primary } = await startReplicaSet({ count: 3 });
  t.diagnostic(`3-member set up in ${((performance.now() - setupStart) / 1000).toFixed(2)}s; primary ${primary}; ${uri}`);

  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  const events = { started: 0, succeeded: 0, awaited: 0, awaitedAt: {}, failed: [], cleared: [], closed: 0 };
  client.on('serverHeartbeatStarted', () => events.started++);
  client.on('serverHeartbeatSucceeded', (e) => {
    events.succeeded++;
    if (e.awaited) {
      events.awaited++;
      (events.awaitedAt[e.connectionId] ??= []).push(performance.now());
    }
  });
  client.on('serverHeartbeatFailed', (e) => events.failed.push(`${e.connectionId} awaited=${e.awaited} after ${e.duration}ms: ${e.failure?.message ?? e.failure}`));
  client.on('connectionPoolCleared', (e) => events.cleared.push(`${e.address}${e.interruptInUseConnections ? ' (in-use connections interrupted)' : ''}`));
  client.on('connectionClosed', () => events.closed++);

  try {
    await client.connect();
    const coll = client.db('monitoring').collection('ticks');
    const opErrors = [];
    let ops = 0;
    const start = performance.now();
    for (let i = 0; performance.now() - start < WATCH_MS; i++) {
      try {
        if (i % 2 === 0) await coll.insertOne({ i, at: new Date() });
        else await coll.findOne({ i: i - 1 });
        ops++;
      } catch (err) {
        opErrors.push(`${err.codeName ?? err.name}: ${err.message}`);
      }
      await pause(OP_EVERY_MS); // pacing of the light workload, not a wait for a state
    }
    t.diagnostic(`${ops} operations in ${WATCH_MS / 1000}s; heartbeats: ${events.started} started, ${events.succeeded} succeeded `
      + `(${events.awaited} awaited), ${events.failed.length} failed; pools cleared: ${events.cleared.length}; connections closed: ${events.closed}`);
    const gaps = Object.values(events.awaitedAt).flatMap((times) => times.slice(1).map((at, i) => at - times[i])).sort((a, b) => a - b);
    if (gaps.length > 0) {
      const secs = (ms) => `${(ms / 1000).toFixed(2)}s`;
      t.diagnostic(`time between awaited heartbeats of one server: min ${secs(gaps[0])}, median ${secs(gaps[gaps.length >> 1])}, `
        + `max ${secs(gaps.at(-1))}`);
    }
    for (const f of events.failed.slice(0, 5)) t.diagnostic(`failed heartbeat: ${f}`);
    for (const c of events.cleared.slice(0, 5)) t.diagnostic(`pool cleared: ${c}`);

    assert.deepEqual(opErrors, [], 'operations failed');
    assert.deepEqual(events.failed, [], `${events.failed.length} heartbeats failed`);
    assert.deepEqual(events.cleared, [], `${events.cleared.length} connection pools were cleared`);
    assert.ok(events.awaited > 0, `no heartbeat succeeded with awaited: true (${events.succeeded} succeeded): the driver is not using the streaming protocol`);
    // mongod holds an awaitable hello until the topology changes or maxAwaitTimeMS (the driver's
    // heartbeatFrequencyMS, 10 s) passes; a server that answers at once makes the monitors spin.
    const bound = 3 * (Math.ceil(WATCH_MS / 10_000) + 3);
    assert.ok(events.awaited <= bound, `${events.awaited} awaited heartbeats in ~${WATCH_MS / 1000}s on a stable 3-member set `
      + `(at most ${bound} expected): the server does not hold awaitable hellos for maxAwaitTimeMS`);
  } finally {
    await client.close();
  }
});
