// Follows the "Mongoose with a MongoDB replica set" tutorial as a new user would, against real `faultline node`
// processes: three data members and one arbiter, each started from a mongod-style YAML config file; the
// three data members initiated with replSetInitiate; the arbiter added the MongoDB 5.0+ way (a cluster-wide
// default write concern first: without it the reconfig fails with 103 NewReplicaSetConfigurationIncompatible);
// then the Mongoose app: connect with a seed list that starts with a secondary, save and find; a seed list
// without the primary; directConnection to a secondary refusing the save (10107 not primary); kill -9 of the
// primary while the app keeps saving (saves resume after the election, no acknowledged save is lost); the old
// primary restarted with its config file rejoining as SECONDARY.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import mongoose from 'mongoose';
import {
  adminCommand, directClient, freePorts, installCleanup, memberStates, startMember, stateCounts, waitFor, waitForPrimary,
  waitForStates,
} from './lib/cluster.mjs';

installCleanup();

const SET = 'rs0';
const state = {}; // what the steps found, for the steps after them
const connections = [];

const catSchema = new mongoose.Schema({ name: String, seq: Number, phase: String });

function elapsed(start) {
  return `${((performance.now() - start) / 1000).toFixed(2)}s`;
}

function needs(t, ...keys) {
  const missing = keys.filter((k) => state[k] === undefined);
  if (missing.length > 0) t.skip(`needs the earlier step(s) that provide: ${missing.join(', ')}`);
  return missing.length === 0;
}

/** A Mongoose connection as the app makes it; closed at the end of the file. */
async function connect(uri) {
  const conn = mongoose.createConnection(uri, { serverSelectionTimeoutMS: 30_000 });
  connections.push(conn);
  await conn.asPromise();
  return conn;
}

test.after(async () => {
  await Promise.all(connections.map((c) => c.close(true).catch(() => {})));
});

test('start 3 data members + 1 arbiter from YAML config files; replSetInitiate the 3 data members', { timeout: 90_000 }, async (t) => {
  const start = performance.now();
  const ports = await freePorts(4);
  const members = await Promise.all(ports.map((port) => startMember({ port, replSet: SET, yaml: true, hostname: 'localhost' })));
  t.diagnostic(`4 members started (${members.map((m) => m.host).join(', ')}) in ${elapsed(start)}`);
  const [m0, m1, m2, arbiter] = members;
  const reply = await adminCommand(m0.host, {
    replSetInitiate: { _id: SET, members: [m0, m1, m2].map((m, i) => ({ _id: i, host: m.host })) },
  });
  assert.equal(reply.ok, 1);
  const dataHosts = [m0.host, m1.host, m2.host];
  const primary = await waitForPrimary(dataHosts, 60_000);
  t.diagnostic(`PRIMARY ${primary} ${elapsed(start)} after start`);
  await waitForStates(primary, '1 PRIMARY and 2 SECONDARY', (s) => {
    const c = stateCounts(s);
    return c.PRIMARY === 1 && c.SECONDARY === 2;
  });
  Object.assign(state, { members, dataMembers: [m0, m1, m2], arbiter, dataHosts, primary });
  t.diagnostic(`1 PRIMARY + 2 SECONDARY ${elapsed(start)} after start`);
});

/** The config with the arbiter added, as rs.addArb() builds it. */
async function configWithArbiter(primary, arbiterHost) {
  const { config } = await adminCommand(primary, { replSetGetConfig: 1 });
  const nextId = Math.max(...config.members.map((m) => m._id)) + 1;
  return { ...config, version: config.version + 1, members: [...config.members, { _id: nextId, host: arbiterHost, arbiterOnly: true }] };
}

test('adding the arbiter before a cluster-wide write concern is set fails with 103 and keeps the primary', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary', 'arbiter')) return;
  const config = await configWithArbiter(state.primary, state.arbiter.host);
  let error;
  try {
    await adminCommand(state.primary, { replSetReconfig: config });
  } catch (err) {
    error = err;
  }
  if (!error) state.arbiterAlreadyAdded = true;
  assert.ok(error, 'replSetReconfig adding an arbiter to a PSS set without a cluster-wide write concern succeeded; MongoDB 5.0+ refuses it');
  assert.equal(error.code, 103, `expected 103 NewReplicaSetConfigurationIncompatible, got ${error.code} ${error.codeName}: ${error.message}`);
  assert.equal(error.codeName, 'NewReplicaSetConfigurationIncompatible');
  assert.match(error.message, /implicit default write concern/);
  t.diagnostic(`refused as MongoDB does: ${error.message}`);
  const primary = await waitForPrimary(state.dataHosts, 10_000);
  assert.equal(primary, state.primary, 'the primary changed after a refused reconfig');
});

test('setDefaultRWConcern {w: 1}, then the arbiter joins and rs.status() shows it as ARBITER', { timeout: 90_000 }, async (t) => {
  if (!needs(t, 'primary', 'arbiter')) return;
  const start = performance.now();
  const reply = await adminCommand(state.primary, { setDefaultRWConcern: 1, defaultWriteConcern: { w: 1 } });
  assert.equal(reply.ok, 1);
  assert.equal(reply.defaultWriteConcern?.w, 1, `setDefaultRWConcern replied ${JSON.stringify(reply)}`);
  const defaults = await adminCommand(state.primary, { getDefaultRWConcern: 1 });
  assert.equal(defaults.defaultWriteConcern?.w, 1, `getDefaultRWConcern replied ${JSON.stringify(defaults)}`);
  if (state.arbiterAlreadyAdded) {
    t.diagnostic('the arbiter was already added by the previous step (which should have been refused)');
  } else {
    const config = await configWithArbiter(state.primary, state.arbiter.host);
    const added = await adminCommand(state.primary, { replSetReconfig: config });
    assert.equal(added.ok, 1);
  }
  await waitForStates(state.primary, `${state.arbiter.host} to be ARBITER`, (s) => s[state.arbiter.host] === 'ARBITER', 60_000);
  t.diagnostic(`arbiter ${state.arbiter.host} is ARBITER ${elapsed(start)} after setDefaultRWConcern`);
  assert.equal(await waitForPrimary(state.dataHosts, 10_000), state.primary, 'adding the arbiter changed the primary');
  assert.deepEqual(stateCounts(await memberStates(state.primary)), { PRIMARY: 1, SECONDARY: 2, ARBITER: 1 });
});

/** The data members, secondaries first: the tutorial's seed list starts with a secondary. */
function tutorialSeedList() {
  const secondaries = state.dataHosts.filter((h) => h !== state.primary);
  return [secondaries[0], state.primary, secondaries[1]];
}

test('Mongoose: the tutorial\'s seed list (a secondary first) saves and finds', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const start = performance.now();
  const uri = `mongodb://${tutorialSeedList().join(',')}/max`;
  const conn = await connect(uri);
  t.diagnostic(`connected with ${uri} in ${elapsed(start)}`);
  const Cat = conn.model('Cat', catSchema);
  const saved = await new Cat({ name: 'Zildjian', phase: 'tutorial' }).save();
  const found = await Cat.find({ name: 'Zildjian' });
  assert.equal(found.length, 1);
  assert.equal(found[0]._id.toString(), saved._id.toString());
  assert.equal(conn.client.topology?.description?.type, 'ReplicaSetWithPrimary');
  t.diagnostic(`save + find ${elapsed(start)} after connecting`);
});

test('Mongoose: a seed list without the primary still saves and finds (the driver discovers the primary)', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const seeds = state.dataHosts.filter((h) => h !== state.primary);
  const conn = await connect(`mongodb://${seeds.join(',')}/max`);
  const Cat = conn.model('Cat', catSchema);
  const saved = await new Cat({ name: 'Mittens', phase: 'no-primary-seed' }).save();
  const found = await Cat.findById(saved._id);
  assert.ok(found, 'the saved cat is not found');
  assert.equal(found.name, 'Mittens');
});

test('Mongoose: directConnection to a secondary refuses a save with 10107 not primary', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const secondary = state.dataHosts.find((h) => h !== state.primary);
  const conn = await connect(`mongodb://${secondary}/max?directConnection=true`);
  const Cat = conn.model('Cat', catSchema);
  await assert.rejects(new Cat({ name: 'Tom', phase: 'direct-secondary' }).save(), (err) => {
    assert.equal(err.code, 10107, `expected 10107 NotWritablePrimary, got ${err.code} ${err.codeName}: ${err.message}`);
    assert.equal(err.codeName, 'NotWritablePrimary');
    assert.match(err.message, /not primary/);
    t.diagnostic(`refused: ${err.codeName} (${err.code}): ${err.message}`);
    return true;
  });
});

test('kill -9 of the primary while the app saves: saves resume after the election and no acknowledged save is lost', { timeout: 150_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const oldPrimary = state.primary;
  const victim = state.dataMembers.find((m) => m.host === oldPrimary);
  const defaults = await adminCommand(oldPrimary, { getDefaultRWConcern: 1 }).catch((err) => ({ error: `${err.codeName} (${err.code}): ${err.message}` }));
  t.diagnostic(`getDefaultRWConcern before the kill: ${JSON.stringify(defaults.error ?? defaults.defaultWriteConcern ?? null)}`);

  // The app, on its own connection with the tutorial's seed list: save after save, no explicit write concern.
  const conn = await connect(`mongodb://${tutorialSeedList().join(',')}/max`);
  const Cat = conn.model('Cat', catSchema);
  const acked = []; // { seq, at }
  const failures = []; // { seq, at, error }
  let inFlight = null; // { seq, since }
  let paused = false;
  let idle = null; // resolves when the loop notices `paused`
  let stop = false;
  let seq = 0;
  const loop = (async () => {
    while (!stop) {
      if (paused) {
        idle?.();
        await waitFor('the save loop to be resumed', () => !paused || stop, 120_000, { interval: 5 });
        continue;
      }
      const n = seq++;
      inFlight = { seq: n, since: performance.now() };
      try {
        await new Cat({ name: `cat-${n}`, seq: n, phase: 'failover' }).save();
        acked.push({ seq: n, at: performance.now() });
      } catch (err) {
        failures.push({ seq: n, at: performance.now(), error: `${err.codeName ?? err.name} (${err.code ?? '-'}): ${err.message}` });
      }
      inFlight = null;
    }
  })();
  const progress = () => {
    const hung = inFlight ? `; save #${inFlight.seq} waiting for its reply for ${((performance.now() - inFlight.since) / 1000).toFixed(1)}s` : '';
    const lastFailure = failures.length > 0 ? `; last failure: ${failures.at(-1).error}` : '';
    return `${acked.length} acknowledged, ${failures.length} failed${hung}${lastFailure}`;
  };

  // For a failure message: is a save that got no reply applied on the new primary (then it waits for its
  // write concern)?
  const whereIs = async (n) => {
    if (n === undefined) return '';
    const primary = await waitForPrimary(state.dataHosts.filter((h) => h !== oldPrimary), 5_000).catch(() => null);
    if (!primary) return '; no primary among the survivors';
    const client = await directClient(primary);
    try {
      const found = await client.db('max').collection('cats').countDocuments({ phase: 'failover', seq: n });
      return found ? `; save #${n} is applied on the new primary ${primary} (its reply waits for the write concern)` : `; save #${n} is not on the new primary ${primary}`;
    } finally {
      await client.close();
    }
  };

  let killedAt;
  try {
    await waitFor('20 acknowledged saves before the kill', () => acked.length >= 20, 30_000, { interval: 10 });
    // With {w: 1} MongoDB only promises to keep writes that reached a majority: pause the app between two
    // saves until every acknowledged save is on both secondaries, then kill the primary and let it go on.
    paused = true;
    await new Promise((resolve) => { idle = resolve; });
    const seqs = acked.map((a) => a.seq);
    for (const host of state.dataHosts.filter((h) => h !== oldPrimary)) {
      const client = await directClient(host, { readPreference: 'secondaryPreferred' });
      try {
        const cats = client.db('max').collection('cats');
        await waitFor(`the ${seqs.length} acknowledged saves to replicate to ${host}`,
          async () => (await cats.countDocuments({ phase: 'failover', seq: { $in: seqs } })) === seqs.length, 30_000, { interval: 20 });
      } finally {
        await client.close();
      }
    }
    const pid = victim.pid;
    await victim.kill9();
    killedAt = performance.now();
    state.victim = victim;
    paused = false;
    t.diagnostic(`kill -9 of the primary ${oldPrimary} (pid ${pid}) after ${acked.length} acknowledged saves`);

    const firstAfter = await waitFor('a save to succeed after the kill', () => acked.find((a) => a.at > killedAt), 60_000, { interval: 20 })
      .catch(async (err) => { throw new Error(`${err.message}; app: ${progress()}${await whereIs(inFlight?.seq)}`); });
    t.diagnostic(`kill -9 -> first successful save: ${((firstAfter.at - killedAt) / 1000).toFixed(2)}s (${failures.length} saves failed meanwhile)`);
    if (failures.length > 0) t.diagnostic(`first failed save: ${failures[0].error}`);
    await waitFor('20 more acknowledged saves after the failover', () => acked.filter((a) => a.at > killedAt).length >= 20, 30_000, { interval: 10 })
      .catch((err) => { throw new Error(`${err.message}; app: ${progress()}`); });
  } finally {
    stop = true;
    paused = false;
    // A save that never gets a reply would keep the loop forever: close the app's connection under it.
    const finished = await Promise.race([loop.then(() => true), waitFor('the save loop to end', () => inFlight === null, 5_000).catch(() => false)]);
    if (!finished) await conn.close(true);
    await loop;
  }

  state.primary = await waitForPrimary(state.dataHosts.filter((h) => h !== oldPrimary), 30_000);
  t.diagnostic(`new primary: ${state.primary}`);
  const present = new Set((await Cat.find({ phase: 'failover' }, { seq: 1 }).lean()).map((d) => d.seq));
  const missing = acked.filter((a) => !present.has(a.seq)).map((a) => a.seq);
  assert.deepEqual(missing, [], `acknowledged saves missing after the failover: ${missing.join(', ')}`);
  state.failoverSeqs = acked.map((a) => a.seq);
  t.diagnostic(`${acked.length} acknowledged saves, all found; ${failures.length} failed`);
});

test('the old primary restarts with the same config file and rejoins as SECONDARY', { timeout: 90_000 }, async (t) => {
  if (!needs(t, 'victim')) return;
  const start = performance.now();
  await state.victim.start();
  t.diagnostic(`restarted ${state.victim.host} with --config ${state.victim.configPath}`);
  const primary = await waitForPrimary(state.dataHosts, 30_000);
  await waitForStates(primary, `${state.victim.host} to be SECONDARY`, (s) => s[state.victim.host] === 'SECONDARY', 60_000);
  t.diagnostic(`SECONDARY ${elapsed(start)} after the restart`);
  if (state.failoverSeqs) {
    const client = await directClient(primary);
    try {
      const docs = await client.db('max').collection('cats').find({ phase: 'failover' }, { projection: { seq: 1 } }).toArray();
      const present = new Set(docs.map((d) => d.seq));
      const missing = state.failoverSeqs.filter((s) => !present.has(s));
      assert.deepEqual(missing, [], `acknowledged saves missing after the old primary rejoined: ${missing.join(', ')}`);
    } finally {
      await client.close();
    }
  }
});
