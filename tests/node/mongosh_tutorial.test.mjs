// Follows MongoDB's "Deploy a Self-Managed Replica Set" tutorial (and the mongosh rs.* helpers it leads to) as
// a new user would, typing into the real mongosh (tests/node/node_modules/.bin/mongosh) against four real
// `faultline node` processes started with mongod's flags: rs.initiate() on one member, rs.add() twice in a
// row, rs.addArb() (refused until a cluster-wide write concern is set, as MongoDB 5.0+ does; the docs' fix is
// setDefaultRWConcern), rs.status(), rs.conf(), rs.reconfig(), rs.secondaryOk() and a read on a secondary,
// rs.printReplicationInfo(), db.printSecondaryReplicationInfo(), show dbs, CRUD, rs.stepDown(), kill -9 of the
// primary, and an insert with the default write concern on the surviving members.
//
// Each step runs mongosh once, with `--eval` (what the user types; mongosh prints the last result and exits 1
// on an uncaught error) or with the lines on standard input (a session typed line after line).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  adminCommand, directClient, freePorts, installCleanup, memberStates, startMember, stateCounts, tempDir, waitFor,
  waitForPrimary, waitForStates,
} from './lib/cluster.mjs';

installCleanup();

const MONGOSH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules/.bin/mongosh');
const HOME = tempDir('faultline-mongosh-home-'); // mongosh's logs and config, away from the user's
const state = {};

/**
 * Runs mongosh against `uri` (a host is turned into `mongodb://HOST/DB?directConnection=true`, DB from `db`)
 * and returns `{ code, stdout, stderr, output, ms }`. `eval` runs as --eval; `stdin` is typed line by line.
 */
function mongosh(uri, { eval: code, stdin, db = '', timeoutMs = 60_000 } = {}) {
  const target = uri.startsWith('mongodb://') ? uri : `mongodb://${uri}/${db}?directConnection=true`;
  const args = [target, '--quiet', '--norc', ...(code !== undefined ? ['--eval', code] : [])];
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(MONGOSH, args, {
      env: { ...process.env, HOME, DO_NOT_TRACK: '1', MONGOSH_NO_UPDATE_CHECK: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mongosh ${args.join(' ')} did not exit within ${timeoutMs} ms; output so far:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolve({ code: exitCode, stdout, stderr, output: stdout + stderr, ms: performance.now() - start });
    });
    child.stdin.end(stdin ?? '');
  });
}

/** mongosh that must exit 0; returns its result. */
async function ok(t, uri, options, label) {
  const result = await mongosh(uri, options);
  assert.equal(result.code, 0, `mongosh exited ${result.code} for ${label ?? options.eval ?? options.stdin}:\n${result.output}`);
  if (options.stdin !== undefined) {
    assert.doesNotMatch(result.output, /Uncaught|MongoServerError|MongoshInternalError/, `an error in the session:\n${result.output}`);
  }
  t.diagnostic(`${label ?? (options.eval ?? options.stdin).trim().split('\n').join('; ')}: ${(result.ms / 1000).toFixed(2)}s`);
  return result;
}

function count(text, re) {
  return (text.match(re) ?? []).length;
}

function needs(t, ...keys) {
  const missing = keys.filter((k) => state[k] === undefined);
  if (missing.length > 0) t.skip(`needs the earlier step(s) that provide: ${missing.join(', ')}`);
  return missing.length === 0;
}

test('start 4 members with mongod\'s flags; rs.initiate() on the first makes it PRIMARY', { timeout: 60_000 }, async (t) => {
  const ports = await freePorts(4);
  const members = await Promise.all(ports.map((port) => startMember({ port, yaml: false })));
  const hosts = members.map((m) => m.host);
  const start = performance.now();
  const r = await ok(t, hosts[0], { eval: 'rs.initiate()' });
  assert.match(r.stdout, /ok: 1/);
  assert.match(r.stdout, new RegExp(`me: '[^']+:${ports[0]}'`)); // mongod names itself by hostname, faultline by address
  await waitForPrimary([hosts[0]], 30_000);
  t.diagnostic(`rs.initiate() -> PRIMARY: ${((performance.now() - start) / 1000).toFixed(2)}s`);
  const prompt = await ok(t, hosts[0], { stdin: 'db.hello().isWritablePrimary\n' });
  assert.match(prompt.stdout, /\[direct: primary\]/);
  Object.assign(state, { members, hosts, primary: hosts[0] });
});

/** The current primary among the data members (hosts 1-3). */
function primaryNow(timeoutMs = 30_000) {
  return waitForPrimary(state.hosts.slice(0, 3), timeoutMs);
}

/**
 * Not part of the tutorial: when a step failed (an engine bug), puts `host` into the config through the driver
 * so that the later steps can still run. Returns a note for the report, or '' if nothing was needed.
 */
async function ensureInConfig(t, host, extra = {}) {
  const primary = await primaryNow(60_000);
  const { config } = await adminCommand(primary, { replSetGetConfig: 1 });
  if (config.members.some((m) => m.host === host)) return '';
  const _id = Math.max(...config.members.map((m) => m._id)) + 1;
  const next = { ...config, version: config.version + 1, members: [...config.members, { _id, host, ...extra }] };
  const note = await adminCommand(primary, { replSetReconfig: next })
    .then(() => `(to go on: added ${host} through the driver)`)
    .catch((err) => `(to go on: adding ${host} through the driver failed too: ${err.codeName} (${err.code}): ${err.message})`);
  t.diagnostic(note);
  return note;
}

/** Fails with every problem found, after the step has done what the later steps need. */
function assertNoProblems(problems) {
  if (problems.length > 0) assert.fail(problems.join('\n\n'));
}

test('rs.add() twice in a row: both succeed and the primary stays PRIMARY', { timeout: 120_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const [h1, h2, h3] = state.hosts;
  const problems = [];
  const start = performance.now();
  const r = await mongosh(h1, { stdin: `rs.add("${h2}")\nrs.add("${h3}")\n` });
  t.diagnostic(`rs.add("${h2}"); rs.add("${h3}") typed in one session: exit ${r.code}, ${(r.ms / 1000).toFixed(2)}s`);
  const stillPrimary = (await adminCommand(h1, { hello: 1 }).catch(() => ({}))).isWritablePrimary === true;
  if (r.code !== 0 || /Uncaught|MongoServerError/.test(r.output)) problems.push(`an rs.add() failed:\n${r.output}`);
  if (count(r.stdout, /ok: 1/g) !== 2) problems.push(`two { ok: 1 } replies expected:\n${r.stdout}`);
  const prompts = r.stdout.match(/(?:rs0 \[direct: \w+\] )?test>/g) ?? [];
  if (prompts.length < 3 || !prompts.every((p) => p === 'rs0 [direct: primary] test>')) problems.push(`the prompt left primary: ${prompts.join(' | ')}`);
  if (!stillPrimary) problems.push(`${h1} is no longer PRIMARY right after the two rs.add()`);

  for (const h of [h2, h3]) await ensureInConfig(t, h);
  const states = await waitForStates(await primaryNow(60_000), `${h2} and ${h3} to be SECONDARY`,
    (s) => stateCounts(s).PRIMARY === 1 && s[h2] !== undefined && s[h3] !== undefined && stateCounts(s).SECONDARY === 2, 60_000);
  t.diagnostic(`1 PRIMARY + 2 SECONDARY ${((performance.now() - start) / 1000).toFixed(2)}s after the first rs.add(): ${JSON.stringify(states)}`);
  state.primary = await primaryNow();
  state.threeMembers = true;
  if (state.primary !== h1) problems.push(`the primary changed from ${h1} to ${state.primary} while the new members joined`);
  assertNoProblems(problems);
});

test('rs.addArb() is refused without a cluster-wide write concern; after setDefaultRWConcern it succeeds', { timeout: 120_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const h4 = state.hosts[3];
  const problems = [];
  const primary = await primaryNow();
  const refused = await mongosh(primary, { eval: `rs.addArb("${h4}")` });
  t.diagnostic(`rs.addArb() before setDefaultRWConcern: exit ${refused.code}: ${refused.output.trim().split('\n')[0]}`);
  // With --eval, mongosh prints a server error as `MongoServerError: MESSAGE` (the code shows in a session).
  if (refused.code !== 1 || !/MongoServerError.*would change the implicit default write concern.*setDefaultRWConcern/.test(refused.output)) {
    problems.push('rs.addArb() on a PSS set without a cluster-wide write concern must fail with NewReplicaSetConfigurationIncompatible '
      + `("Reconfig attempted to install a config that would change the implicit default write concern. Use the setDefaultRWConcern `
      + `command ..."), as MongoDB 5.0+ does; got exit ${refused.code}:\n${refused.output}`);
  }

  const set = await mongosh(primary, { eval: 'db.adminCommand({setDefaultRWConcern: 1, defaultWriteConcern: {w: 1}})' });
  t.diagnostic(`db.adminCommand({setDefaultRWConcern: 1, defaultWriteConcern: {w: 1}}): exit ${set.code}, ${(set.ms / 1000).toFixed(2)}s`);
  if (set.code !== 0 || !/defaultWriteConcern: \{ w: 1(, wtimeout: 0)? \}/.test(set.stdout) || !/ok: 1/.test(set.stdout)) {
    problems.push(`setDefaultRWConcern failed: exit ${set.code}:\n${set.output}`);
  }
  const { config } = await adminCommand(primary, { replSetGetConfig: 1 });
  if (!config.members.some((m) => m.host === h4)) {
    const added = await mongosh(primary, { eval: `rs.addArb("${h4}")` });
    t.diagnostic(`rs.addArb() after setDefaultRWConcern: exit ${added.code}, ${(added.ms / 1000).toFixed(2)}s`);
    if (added.code !== 0 || !/ok: 1/.test(added.stdout)) problems.push(`rs.addArb() after setDefaultRWConcern failed: exit ${added.code}:\n${added.output}`);
  }
  await ensureInConfig(t, h4, { arbiterOnly: true });
  state.arbiter = h4;
  const after = await primaryNow();
  if (after !== primary) problems.push(`the primary changed from ${primary} to ${after} after rs.addArb()`);
  state.primary = after;
  assertNoProblems(problems);
});

test('rs.status() shows 1 PRIMARY, 2 SECONDARY, 1 ARBITER; rs.conf() lists the members', { timeout: 90_000 }, async (t) => {
  if (!needs(t, 'arbiter')) return;
  const start = performance.now();
  await waitForStates(await primaryNow(), '1 PRIMARY, 2 SECONDARY, 1 ARBITER', (s) => {
    const c = stateCounts(s);
    return c.PRIMARY === 1 && c.SECONDARY === 2 && c.ARBITER === 1;
  }, 60_000);
  t.diagnostic(`1 PRIMARY, 2 SECONDARY, 1 ARBITER ${((performance.now() - start) / 1000).toFixed(2)}s after the wait started`);
  const primary = await primaryNow();
  const status = await ok(t, primary, { eval: 'rs.status()' });
  assert.equal(count(status.stdout, /stateStr: 'PRIMARY'/g), 1, status.stdout);
  assert.equal(count(status.stdout, /stateStr: 'SECONDARY'/g), 2, status.stdout);
  assert.equal(count(status.stdout, /stateStr: 'ARBITER'/g), 1, status.stdout);
  assert.match(status.stdout, /set: 'rs0'/);
  const conf = await ok(t, primary, { eval: 'rs.conf()' });
  for (const h of state.hosts) assert.match(conf.stdout, new RegExp(`host: '${h}'`));
  assert.match(conf.stdout, /arbiterOnly: true/);
});

test('rs.reconfig() with a changed priority from rs.conf()', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const primary = await primaryNow();
  const target = state.hosts.slice(0, 3).find((h) => h !== primary); // a secondary
  const before = await ok(t, primary, { eval: 'rs.conf().version' });
  const r = await ok(t, primary, {
    eval: `cfg = rs.conf()\ncfg.members.find(m => m.host === "${target}").priority = 0.5\nrs.reconfig(cfg)`,
  }, `cfg = rs.conf(); cfg.members[i].priority = 0.5; rs.reconfig(cfg)`);
  assert.match(r.stdout, /ok: 1/);
  const after = await ok(t, primary, { eval: `rs.conf().members.find(m => m.host === "${target}").priority` });
  assert.equal(after.stdout.trim(), '0.5');
  const versionAfter = await ok(t, primary, { eval: 'rs.conf().version' });
  assert.equal(Number(versionAfter.stdout.trim()), Number(before.stdout.trim()) + 1);
  assert.equal(await primaryNow(), primary, 'the primary changed after rs.reconfig()');
});

test('rs.secondaryOk() then a read on a secondary sees a document written on the primary', { timeout: 90_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const primary = await primaryNow();
  const secondary = state.hosts.slice(0, 3).find((h) => h !== primary);
  const w = await ok(t, primary, { db: 'tutorial', eval: 'db.people.insertOne({name: "grace", role: "read-on-secondary"})' });
  assert.match(w.stdout, /acknowledged: true/);
  const start = performance.now();
  const r = await waitFor(`the document on the secondary ${secondary} (mongosh)`, async () => {
    const res = await mongosh(secondary, { stdin: 'rs.secondaryOk()\nuse tutorial\ndb.people.find({role: "read-on-secondary"})\n' });
    return res.code === 0 && /name: 'grace'/.test(res.stdout) ? res : null;
  }, 30_000, { interval: 200 });
  assert.match(r.stdout, /\[direct: secondary\]/);
  assert.doesNotMatch(r.output, /Uncaught|NotPrimaryNoSecondaryOk/);
  t.diagnostic(`read on the secondary ${secondary} after ${((performance.now() - start) / 1000).toFixed(2)}s`);
});

test('rs.printReplicationInfo() and db.printSecondaryReplicationInfo()', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const primary = await primaryNow();
  const info = await ok(t, primary, { eval: 'rs.printReplicationInfo()' });
  for (const line of ['configured oplog size', 'log length start to end', 'oplog first event time', 'oplog last event time', 'now']) {
    assert.match(info.stdout, new RegExp(line), `rs.printReplicationInfo() lacks "${line}":\n${info.stdout}`);
  }
  const secondaries = await ok(t, primary, { eval: 'db.printSecondaryReplicationInfo()' });
  for (const h of state.hosts.slice(0, 3).filter((x) => x !== primary)) {
    assert.match(secondaries.stdout, new RegExp(`source: ${h}`), secondaries.stdout);
  }
  assert.equal(count(secondaries.stdout, /behind the primary/g), 2, secondaries.stdout);
  assert.match(secondaries.stdout, /syncedTo:/);
});

test('show dbs lists admin, config and local', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const r = await ok(t, await primaryNow(), { eval: 'show dbs' });
  const names = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
  for (const db of ['admin', 'config', 'local']) assert.ok(names.includes(db), `show dbs lacks ${db}:\n${r.stdout}`);
});

test('CRUD in mongosh: insertOne, find, updateOne, deleteOne', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'primary')) return;
  const session = [
    'use tutorial',
    'db.people.insertOne({name: "ada", age: 36})',
    'db.people.find({age: {$gt: 30}})',
    'db.people.updateOne({name: "ada"}, {$set: {age: 37}})',
    'db.people.findOne({name: "ada"}).age',
    'db.people.deleteOne({name: "ada"})',
    'db.people.countDocuments({name: "ada"})',
    '',
  ].join('\n');
  const r = await ok(t, await primaryNow(), { stdin: session }, 'insertOne / find / updateOne / deleteOne');
  assert.match(r.stdout, /acknowledged: true,\s+insertedId: ObjectId\('[0-9a-f]{24}'\)/);
  assert.match(r.stdout, /name: 'ada',\s+age: 36/);
  assert.match(r.stdout, /matchedCount: 1,\s+modifiedCount: 1/);
  assert.match(r.stdout, /> 37\n/);
  assert.match(r.stdout, /deletedCount: 1/);
  assert.match(r.stdout, /> 0\n/);
});

test('rs.stepDown(): a new primary appears', { timeout: 90_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const old = await primaryNow();
  const start = performance.now();
  const r = await mongosh(old, { eval: 'rs.stepDown()' });
  t.diagnostic(`rs.stepDown() on ${old}: exit ${r.code}, ${(r.ms / 1000).toFixed(2)}s: ${r.output.trim().split('\n').slice(0, 3).join(' ')}`);
  assert.equal(r.code, 0, `rs.stepDown() failed:\n${r.output}`);
  assert.match(r.stdout, /ok: 1/);
  const next = await waitFor('a new PRIMARY after rs.stepDown()', async () => {
    const p = await primaryNow(5_000).catch(() => null);
    return p && p !== old ? p : null;
  }, 60_000);
  t.diagnostic(`rs.stepDown() -> new primary ${next}: ${((performance.now() - start) / 1000).toFixed(2)}s`);
  const s = await ok(t, next, { eval: 'rs.status().members.map(m => m.name + " " + m.stateStr).join("\\n")' });
  assert.match(s.stdout, new RegExp(`${next} PRIMARY`));
  assert.match(s.stdout, new RegExp(`${old} SECONDARY`));
});

test('kill -9 of the primary: a new PRIMARY in rs.status(), and insertOne() with the default write concern succeeds', { timeout: 120_000 }, async (t) => {
  if (!needs(t, 'threeMembers')) return;
  const victimHost = await primaryNow();
  const victim = state.members.find((m) => m.host === victimHost);
  const survivors = state.hosts.slice(0, 3).filter((h) => h !== victimHost);
  await victim.kill9();
  const killedAt = performance.now();
  t.diagnostic(`kill -9 of the primary ${victimHost}`);
  const next = await waitForPrimary(survivors, 60_000);
  t.diagnostic(`kill -9 -> new primary ${next}: ${((performance.now() - killedAt) / 1000).toFixed(2)}s`);
  await waitFor(`${victimHost} to be shown as down (health 0)`, async () => {
    const status = await adminCommand(next, { replSetGetStatus: 1 });
    return status.members.find((m) => m.name === victimHost)?.health === 0;
  }, 30_000, { interval: 200 });
  const problems = [];
  const status = await ok(t, next, { eval: 'rs.status()' });
  assert.equal(count(status.stdout, /stateStr: 'PRIMARY'/g), 1, status.stdout);
  // mongod shows a member it cannot reach as health 0, state 8, stateStr '(not reachable/healthy)'.
  const down = new RegExp(`name: '${victimHost}',\\s+health: 0,\\s+state: 8,\\s+stateStr: '\\(not reachable/healthy\\)'`);
  if (!down.test(status.stdout)) {
    const lines = status.stdout.split('\n');
    const at = lines.findIndex((l) => l.includes(`name: '${victimHost}'`));
    problems.push(`rs.status() does not show ${victimHost} as mongod does (health: 0, state: 8, stateStr: '(not reachable/healthy)'):\n`
      + lines.slice(Math.max(at - 1, 0), at + 5).join('\n'));
  }

  const uri = `mongodb://${state.hosts.join(',')}/tutorial?replicaSet=rs0`;
  const r = await mongosh(uri, { eval: 'db.people.insertOne({name: "linus", after: "kill -9"})', timeoutMs: 45_000 })
    .catch((err) => ({ code: 'no exit', stdout: '', output: err.message, ms: 45_000 }));
  t.diagnostic(`insertOne() on the surviving members: exit ${r.code}, ${(r.ms / 1000).toFixed(2)}s`);
  if (r.code !== 0 || !/acknowledged: true/.test(r.stdout)) {
    const client = await directClient(next);
    const applied = await client.db('tutorial').collection('people').countDocuments({ name: 'linus' }).finally(() => client.close());
    problems.push(`insertOne() with the default write concern on the surviving members failed (exit ${r.code}; the document is `
      + `${applied ? 'applied on the primary, so the reply waited for the write concern' : 'not on the primary'}):\n${r.output}`);
  } else {
    const back = await ok(t, uri, { eval: 'db.people.countDocuments({name: "linus"})' });
    assert.equal(back.stdout.trim(), '1');
  }
  t.diagnostic(`final states: ${JSON.stringify(await memberStates(next))}`);
  assertNoProblems(problems);
});
