// Follows MongoDB's "Deploy a Self-Managed Sharded Cluster" tutorial as a new user would, typing into the real
// mongosh (tests/node/node_modules/.bin/mongosh): a config server replica set and two shard replica sets, each
// member a `faultline node` started from a YAML config file (`sharding.clusterRole`, `replication.replSetName`,
// `net.port`, `storage.dbPath`), rs.initiate() in mongosh on each, a `faultline mongos` started from a YAML
// config file (`sharding.configDB`), then through the router: sh.addShard(), sh.enableSharding(),
// sh.shardCollection() with a hashed and a range key, inserts, sh.splitAt(), sh.splitFind(), sh.status(),
// db.adminCommand({listShards: 1}), sh.moveChunk() and sh.getBalancerState() / balancerStatus. sh.status() must show the
// shards, the database and its primary shard, each collection's key and chunk counts per shard, and the
// data distribution ($shardedDataDistribution).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  FAULTLINE_BIN, Member, adminCommand, freePorts, installCleanup, tempDir, waitFor, waitForPrimary,
} from './lib/cluster.mjs';

installCleanup();

const MONGOSH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules/.bin/mongosh');
const HOME = tempDir('faultline-mongosh-home-');
const state = {};
const routers = new Set(); // mongos child processes this file started

after(() => {
  for (const child of routers) child.kill('SIGKILL');
});
process.on('exit', () => {
  for (const child of routers) child.kill('SIGKILL');
});

/** Runs mongosh on `uri` with `--eval code`; resolves `{ code, stdout, output, ms }`. */
function mongosh(uri, code, timeoutMs = 60_000) {
  const args = [uri, '--quiet', '--norc', '--eval', code];
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(MONGOSH, args, {
      env: { ...process.env, HOME, DO_NOT_TRACK: '1', MONGOSH_NO_UPDATE_CHECK: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mongosh ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolve({ code: exitCode, stdout, output: stdout + stderr, ms: performance.now() - start });
    });
  });
}

/** mongosh that must exit 0 without a server error; returns its result. */
async function ok(t, uri, code) {
  const result = await mongosh(uri, code);
  assert.equal(result.code, 0, `mongosh exited ${result.code} for ${code}:\n${result.output}`);
  assert.doesNotMatch(result.output, /MongoServerError|MongoshInternalError|Uncaught/, `an error for ${code}:\n${result.output}`);
  t.diagnostic(`${code.split('\n').join('; ')}: ${(result.ms / 1000).toFixed(2)}s`);
  return result;
}

const direct = (host) => `mongodb://${host}/?directConnection=true`;

function needs(t, ...keys) {
  const missing = keys.filter((k) => state[k] === undefined);
  if (missing.length > 0) t.skip(`needs the earlier step(s) that provide: ${missing.join(', ')}`);
  return missing.length === 0;
}

/** A member whose config file also says `sharding.clusterRole: ROLE`. */
async function startShardingMember(port, replSet, role) {
  const member = new Member({ port, dir: tempDir(`faultline-${replSet}-${port}-`), replSet });
  fs.appendFileSync(member.configPath, `sharding:\n  clusterRole: ${role}\n`);
  return member.start();
}

/** A one-member replica set of `role` from a config file, initiated in mongosh with rs.initiate(). */
async function startSet(t, port, replSet, role) {
  const member = await startShardingMember(port, replSet, role);
  const r = await ok(t, direct(member.host), 'rs.initiate()');
  assert.match(r.stdout, /ok: 1/);
  await waitForPrimary([member.host], 30_000);
  return member;
}

test('config server and two shard replica sets from config files; rs.initiate() in mongosh on each', { timeout: 120_000 }, async (t) => {
  const [cfg, a, b] = await freePorts(3);
  const config = await startSet(t, cfg, 'cfgRS', 'configsvr');
  const shardA = await startSet(t, a, 'shardA', 'shardsvr');
  const shardB = await startSet(t, b, 'shardB', 'shardsvr');
  Object.assign(state, { config, shardA, shardB });
});

test('faultline mongos from a config file with sharding.configDB answers as a router', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'config')) return;
  const [port] = await freePorts(1);
  const dir = tempDir('faultline-mongos-');
  const configPath = path.join(dir, 'mongos.conf');
  const logPath = path.join(dir, 'mongos.log');
  fs.writeFileSync(configPath, [
    'sharding:',
    `  configDB: cfgRS/${state.config.host}`,
    'net:',
    `  port: ${port}`,
    '  bindIp: 127.0.0.1',
    'systemLog:',
    '  destination: file',
    `  path: ${logPath}`,
    '',
  ].join('\n'));
  const child = spawn(FAULTLINE_BIN, ['mongos', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  routers.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const host = `127.0.0.1:${port}`;
  const hello = await waitFor('faultline mongos to answer hello', async () => {
    if (child.exitCode !== null) throw new Error(`mongos exited ${child.exitCode}: ${stderr}`);
    return adminCommand(host, { hello: 1 }, { serverSelectionTimeoutMS: 1_000 });
  }, 30_000);
  assert.equal(hello.msg, 'isdbgrid');
  const r = await ok(t, `mongodb://${host}/test`, 'db.hello().msg');
  assert.match(r.stdout, /isdbgrid/);
  state.mongos = `mongodb://${host}/test`;
});

test('sh.addShard() twice; listShards names both', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'mongos', 'shardA', 'shardB')) return;
  for (const [name, member] of [['shardA', state.shardA], ['shardB', state.shardB]]) {
    const r = await ok(t, state.mongos, `sh.addShard("${name}/${member.host}")`);
    assert.match(r.stdout, new RegExp(`shardAdded: '${name}'`), r.stdout);
  }
  const r = await ok(t, state.mongos, 'db.adminCommand({listShards: 1})');
  for (const [name, member] of [['shardA', state.shardA], ['shardB', state.shardB]]) {
    assert.match(r.stdout, new RegExp(`_id: '${name}',\\s+host: '${name}/${member.host}'`), r.stdout);
  }
  state.shards = true;
});

test('sh.enableSharding(), sh.shardCollection() hashed and range, inserts, sh.splitAt(), sh.splitFind()', { timeout: 120_000 }, async (t) => {
  if (!needs(t, 'shards')) return;
  const enabled = await ok(t, state.mongos, 'sh.enableSharding("shop")');
  assert.match(enabled.stdout, /ok: 1/);
  const hashed = await ok(t, state.mongos, 'sh.shardCollection("shop.orders", {customer: "hashed"})');
  assert.match(hashed.stdout, /collectionsharded: 'shop.orders'/);
  const range = await ok(t, state.mongos, 'sh.shardCollection("shop.items", {sku: 1})');
  assert.match(range.stdout, /collectionsharded: 'shop.items'/);

  const insert = await ok(t, state.mongos, [
    'const s = db.getSiblingDB("shop");',
    's.orders.insertMany(Array.from({length: 500}, (_, i) => ({customer: i, total: i * 3})));',
    's.items.insertMany(Array.from({length: 500}, (_, i) => ({sku: i, name: "item" + i})));',
    'print(s.orders.countDocuments({}), s.items.countDocuments({}))',
  ].join('\n'));
  assert.match(insert.stdout, /500 500/);

  await ok(t, state.mongos, 'sh.splitAt("shop.items", {sku: 250})');
  await ok(t, state.mongos, 'sh.splitFind("shop.items", {sku: 100})');
  const chunks = await ok(t, state.mongos,
    'print(db.getSiblingDB("config").chunks.countDocuments({uuid: db.getSiblingDB("config").collections.findOne({_id: "shop.items"}).uuid}))');
  assert.match(chunks.stdout, /^3\s*$/m, `three chunks of shop.items after splitAt and splitFind: ${chunks.stdout}`);
  state.sharded = true;
});

test('sh.status() shows the shards, the database with its primary shard, and each collection\'s key and chunks', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'sharded')) return;
  const r = await ok(t, state.mongos, 'sh.status()');
  const out = r.stdout;
  t.diagnostic(out);
  assert.match(out, /shardingVersion/);
  assert.match(out, new RegExp(`_id: 'shardA',\\s+host: 'shardA/${state.shardA.host}'`));
  assert.match(out, new RegExp(`_id: 'shardB',\\s+host: 'shardB/${state.shardB.host}'`));
  assert.match(out, /database: \{\s+_id: 'shop',\s+primary: 'shard[AB]'/);
  assert.match(out, /'shop\.orders': \{\s+shardKey: \{ customer: 'hashed' \}/);
  assert.match(out, /'shop\.items': \{\s+shardKey: \{ sku: 1 \}/);
  // chunkMetadata lists each shard with its count of chunks of each collection.
  const orders = out.slice(out.indexOf("'shop.orders'"));
  assert.match(orders, /chunkMetadata: \[\s+\{ shard: 'shard[AB]', nChunks: \d+ \},\s+\{ shard: 'shard[AB]', nChunks: \d+ \}/);
  const items = out.slice(out.indexOf("'shop.items'"));
  const counts = [...items.slice(0, items.indexOf('chunks:') > 0 ? items.indexOf('chunks:') : undefined)
    .matchAll(/nChunks: (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(counts.reduce((a, c) => a + c, 0), 3, `shop.items has 3 chunks in all:\n${items}`);
  // shardedDataDistribution: every document owned, none orphaned.
  const distribution = out.slice(out.indexOf('shardedDataDistribution'), out.indexOf('\ndatabases'));
  assert.doesNotMatch(distribution, /undefined/, distribution);
  const owned = [...distribution.matchAll(/numOwnedDocuments: (?:Long\(')?(\d+)/g)].map((m) => Number(m[1]));
  assert.equal(owned.reduce((a, c) => a + c, 0), 1000, `500 orders and 500 items owned:\n${distribution}`);
  assert.match(distribution, /ownedSizeBytes: (?:Long\(')?[1-9]/, distribution);
  assert.doesNotMatch(distribution, /numOrphanedDocs: (?:Long\(')?[1-9]/, distribution);
});

test('sh.moveChunk() moves a chunk to the other shard; every document is still found once', { timeout: 120_000 }, async (t) => {
  if (!needs(t, 'sharded')) return;
  const ownerOf = 'const c = db.getSiblingDB("config"); '
    + 'print(c.chunks.findOne({uuid: c.collections.findOne({_id: "shop.items"}).uuid, "min.sku": 250}).shard)';
  const before = await ok(t, state.mongos, ownerOf);
  const from = before.stdout.trim().split('\n').pop();
  const to = from === 'shardA' ? 'shardB' : 'shardA';
  const moved = await ok(t, state.mongos, `sh.moveChunk("shop.items", {sku: 300}, "${to}")`);
  assert.match(moved.stdout, /millis: (Long\(')?\d+/, moved.stdout);
  assert.match(moved.stdout, /ok: 1/, moved.stdout);
  const after = await ok(t, state.mongos, ownerOf);
  assert.equal(after.stdout.trim().split('\n').pop(), to);
  const found = await ok(t, state.mongos,
    'const ids = db.getSiblingDB("shop").items.find({}, {sku: 1}).toArray().map((d) => d.sku); print(ids.length, new Set(ids).size)');
  assert.match(found.stdout, /^500 500\s*$/m, found.stdout);
});

test('balancerStatus and sh.getBalancerState() through the router', { timeout: 60_000 }, async (t) => {
  if (!needs(t, 'mongos')) return;
  const status = await ok(t, state.mongos, 'db.adminCommand({balancerStatus: 1})');
  assert.match(status.stdout, /mode: '(full|off)'/);
  assert.match(status.stdout, /ok: 1/);
  const enabled = await ok(t, state.mongos, 'sh.getBalancerState()');
  assert.match(enabled.stdout, /^(true|false)\s*$/m);
});
