// Cluster plumbing for the end-to-end tutorial tests (node --test): start real `faultline node` members on
// 127.0.0.1 from mongod-style YAML config files (or mongod's flags), kill -9 / stop / restart them, poll for
// replica-set states with a deadline, and run admin commands with the official mongodb driver.
//
//   import { installCleanup, startMember, freePort, waitFor, waitForPrimary, adminCommand } from './lib/cluster.mjs';
//   installCleanup();                       // every member started by this file dies when its tests end
//   const m = await startMember({ port: await freePort(), replSet: 'rs0' });
//   await adminCommand(m.host, { replSetInitiate: {} });
//   const primary = await waitForPrimary([m.host]);
//
// The binary is $FAULTLINE_BIN (default target/debug/faultline under the repository root). Member data and
// logs live in a temporary directory under os.tmpdir(), removed at the end unless a test failed or
// FAULTLINE_KEEP_TMP=1 (then the paths are printed).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach } from 'node:test';
import { MongoClient } from 'mongodb';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FAULTLINE_BIN = process.env.FAULTLINE_BIN
  ? path.resolve(process.env.FAULTLINE_BIN)
  : path.join(REPO_ROOT, 'target/debug/faultline');

const live = new Set(); // child processes still running
const members = new Set(); // every Member ever started by this process
const tempDirs = new Set();

// --- small utilities -----------------------------------------------------------------------------------

/** A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports. */
export async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** A fresh temporary directory under os.tmpdir(), removed by cleanup. */
export function tempDir(prefix = 'faultline-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function describe(value) {
  if (value instanceof Error) return `${value.name}: ${value.message}${value.code !== undefined ? ` (code ${value.code})` : ''}`;
  try {
    const text = JSON.stringify(value);
    return text && text.length > 500 ? `${text.slice(0, 500)}…` : text;
  } catch {
    return String(value);
  }
}

/**
 * Polls `fn` (sync or async) until it returns a truthy value, and returns that value. Errors thrown by `fn`
 * count as "not yet". After `timeoutMs` it throws `timed out after Ns waiting for WHAT`, with the last value
 * or error seen.
 */
export async function waitFor(what, fn, timeoutMs = 30_000, { interval = 100 } = {}) {
  const start = Date.now();
  let last = 'never evaluated';
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() - start >= timeoutMs) {
      throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(1)}s waiting for ${what}; last: ${describe(last)}`);
    }
    await delay(interval);
  }
}

// --- talking to members ----------------------------------------------------------------------------------

/** A MongoClient connected straight to one member (`directConnection=true`); close it when done. */
export async function directClient(host, options = {}) {
  const client = new MongoClient(`mongodb://${host}/?directConnection=true`, {
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    ...options,
  });
  await client.connect();
  return client;
}

/** Runs one admin command on `host` through the mongodb driver (directConnection) and returns the reply. */
export async function adminCommand(host, cmd, options = {}) {
  const client = new MongoClient(`mongodb://${host}/?directConnection=true`, {
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    socketTimeoutMS: 60_000,
    ...options,
  });
  try {
    return await client.db('admin').command(cmd);
  } finally {
    await client.close().catch(() => {});
  }
}

/** replSetGetStatus as seen by `host`. */
export function replSetStatus(host) {
  return adminCommand(host, { replSetGetStatus: 1 });
}

/** `{ 'host:port': 'PRIMARY' | 'SECONDARY' | 'ARBITER' | ... }` from `host`'s replSetGetStatus. */
export async function memberStates(host) {
  const status = await replSetStatus(host);
  return Object.fromEntries(status.members.map((m) => [m.name, m.stateStr]));
}

/**
 * Waits until one of `hosts` is a writable primary (hello says isWritablePrimary and its own replSetGetStatus
 * says PRIMARY) and no other reachable member of `hosts` claims to be one; returns that host (as spelled in
 * `hosts`).
 */
export async function waitForPrimary(hosts, timeoutMs = 60_000) {
  return waitFor(`a PRIMARY among ${hosts.join(', ')}`, async () => {
    const replies = await Promise.all(
      hosts.map((h) => adminCommand(h, { hello: 1 }, { serverSelectionTimeoutMS: 1_500, connectTimeoutMS: 1_500 }).catch(() => null)),
    );
    const primaries = hosts.filter((h, i) => replies[i]?.isWritablePrimary);
    if (primaries.length !== 1) return null;
    const self = (await replSetStatus(primaries[0])).members.find((m) => m.self);
    return self?.stateStr === 'PRIMARY' ? primaries[0] : null;
  }, timeoutMs, { interval: 200 });
}

/**
 * Waits until `host`'s replSetGetStatus satisfies `predicate(states)` (see memberStates); returns the states.
 */
export async function waitForStates(host, what, predicate, timeoutMs = 60_000) {
  return waitFor(what, async () => {
    const states = await memberStates(host);
    return predicate(states) ? states : null;
  }, timeoutMs, { interval: 200 });
}

/** Counts of each state in a memberStates() map: `{ PRIMARY: 1, SECONDARY: 2, ... }`. */
export function stateCounts(states) {
  const counts = {};
  for (const s of Object.values(states)) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

// --- members -----------------------------------------------------------------------------------------

/** The mongod-style YAML configuration file a tutorial would write for one member. */
export function mongodYaml({ port, dbPath, replSet, logPath, bindIp = '127.0.0.1' }) {
  return [
    'net:',
    `  port: ${port}`,
    `  bindIp: ${bindIp}`,
    'storage:',
    `  dbPath: ${dbPath}`,
    '  journal:',
    '    enabled: true',
    'replication:',
    `  replSetName: ${replSet}`,
    'systemLog:',
    '  destination: file',
    `  path: ${logPath}`,
    '  logAppend: true',
    '',
  ].join('\n');
}

/** One `faultline node` process. Create it with startMember(). */
export class Member {
  constructor({ port, dir, replSet = 'rs0', yaml = true, extraArgs = [], hostname = '127.0.0.1' }) {
    this.port = port;
    this.dir = dir;
    this.replSet = replSet;
    this.yaml = yaml;
    this.extraArgs = extraArgs;
    this.host = `${hostname}:${port}`;
    this.dbPath = path.join(dir, 'db');
    this.logPath = path.join(dir, 'mongod.log');
    this.configPath = yaml ? path.join(dir, 'mongod.conf') : null;
    this.child = null;
    this.output = ''; // the last few KB of the process's stdout+stderr
    fs.mkdirSync(this.dbPath, { recursive: true });
    if (yaml) {
      fs.writeFileSync(this.configPath, mongodYaml({ port, dbPath: this.dbPath, replSet, logPath: this.logPath }));
    }
    members.add(this);
  }

  get pid() {
    return this.child?.pid;
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The command line this member runs with (after the binary). */
  args() {
    const base = this.yaml
      ? ['node', '--config', this.configPath]
      : ['node', '--port', String(this.port), '--bind_ip', '127.0.0.1', '--dbpath', this.dbPath,
          '--replSet', this.replSet, '--logpath', this.logPath];
    return [...base, ...this.extraArgs];
  }

  /** Starts the process and waits until it answers `ping` (it is restarted with the same config). */
  async start({ timeoutMs = 30_000 } = {}) {
    if (this.running) throw new Error(`${this.host} is already running (pid ${this.pid})`);
    if (!fs.existsSync(FAULTLINE_BIN)) {
      throw new Error(`faultline binary not found at ${FAULTLINE_BIN} (build it with cargo build, or set FAULTLINE_BIN)`);
    }
    const child = spawn(FAULTLINE_BIN, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-8_192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        live.delete(child);
        this.output += `\nspawn error: ${err.message}`;
        resolve({ code: null, signal: null, error: err });
      });
    });
    await waitFor(`${this.host} (pid ${child.pid}) to answer ping`, async () => {
      if (child !== this.child || !this.running) {
        throw new Error(`faultline node exited before answering (exit ${child.exitCode ?? child.signalCode}); `
          + `output:\n${this.output}\nlog tail:\n${this.logTail()}`);
      }
      const reply = await adminCommand(this.host, { ping: 1 }, { serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 });
      return reply.ok === 1;
    }, timeoutMs, { interval: 100 }).catch((err) => {
      // A start that failed must not leave the process behind.
      if (this.running) child.kill('SIGKILL');
      throw err;
    });
    return this;
  }

  /** kill -9: the process dies at once, with no clean shutdown. Resolves when it has exited. */
  async kill9() {
    if (!this.running) return;
    process.kill(this.child.pid, 'SIGKILL');
    await this.exited;
  }

  /** SIGTERM (a clean shutdown), then SIGKILL if it is still running after `graceMs`. */
  async stop({ graceMs = 15_000 } = {}) {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.running && this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the member if it runs, then starts it again with the same config file and data. */
  async restart(options) {
    await this.stop();
    return this.start(options);
  }

  /** The last `lines` lines of the member's log file. */
  logTail(lines = 30) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines - 1).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/**
 * Starts one member and waits until it answers ping. Options: `port` (default: a free one), `dir` (default: a
 * fresh temp dir), `replSet` ('rs0'), `yaml` (true: a config file and `--config FILE`; false: mongod's
 * flags), `extraArgs` (more flags), `hostname` ('127.0.0.1'; the name `host` uses, e.g. 'localhost').
 */
export async function startMember(options = {}) {
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? tempDir(`faultline-${port}-`);
  const member = new Member({ ...options, port, dir });
  await member.start();
  return member;
}

/**
 * Starts `count` members, initiates them as one set (member 0 first, via replSetInitiate on it), and waits
 * for a PRIMARY and every other member to be SECONDARY. Returns `{ members, hosts, primary, uri }`; the
 * members' config hosts use `hostname`. `memberOptions` go to every startMember().
 */
export async function startReplicaSet({ count = 3, replSet = 'rs0', hostname = '127.0.0.1', timeoutMs = 90_000, ...memberOptions } = {}) {
  const ports = await freePorts(count);
  const started = await Promise.all(ports.map((port) => startMember({ ...memberOptions, port, replSet, hostname })));
  const hosts = started.map((m) => m.host);
  await adminCommand(hosts[0], {
    replSetInitiate: { _id: replSet, members: hosts.map((host, i) => ({ _id: i, host })) },
  });
  const primary = await waitForPrimary(hosts, timeoutMs);
  await waitForStates(primary, `1 PRIMARY and ${count - 1} SECONDARY`, (s) => {
    const c = stateCounts(s);
    return c.PRIMARY === 1 && (c.SECONDARY ?? 0) === count - 1;
  }, timeoutMs);
  return { members: started, hosts, primary, uri: `mongodb://${hosts.join(',')}/?replicaSet=${replSet}` };
}

// --- cleanup -------------------------------------------------------------------------------------------

/** Kills every member process still running (SIGKILL, at once). Synchronous: safe in an 'exit' handler. */
export function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Stops every member (SIGKILL) and removes the temp dirs unless `keepDirs`. */
export async function stopAll({ keepDirs = false } = {}) {
  const running = [...members].filter((m) => m.running);
  killAll();
  await Promise.all(running.map((m) => m.exited));
  if (keepDirs) return [...tempDirs];
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
  return [];
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + os.constants.signals[signal]);
  });
}

/**
 * Registers node:test hooks for the calling test file: after all its tests, every member it started is
 * killed and its temp dirs removed (kept, and their paths printed, if a test failed or FAULTLINE_KEEP_TMP=1).
 */
export function installCleanup() {
  let failed = false;
  afterEach((t) => {
    if (t.passed === false) failed = true;
  });
  after(async () => {
    const kept = await stopAll({ keepDirs: failed || process.env.FAULTLINE_KEEP_TMP === '1' });
    if (kept.length > 0) console.log(`member data and logs kept in: ${kept.join(' ')}`);
  });
}
