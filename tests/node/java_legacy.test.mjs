// The classic Java replica-set tutorial with the LEGACY 3.x driver API (mongo-java-driver 3.6.3, Debian's
// libmongodb-java), end to end against real `faultline node` processes on 127.0.0.1:
//
//   three members from mongod-style YAML configs, rs.initiate() with two data members and an arbiter, wait
//   for a PRIMARY; then tests/java/LegacyTutorial.java (run as a single-file source program, so a compile
//   error fails this test) connects with MongoClient(List<ServerAddress>, MongoClientOptions) and with
//   MongoClientURI, does its DBCollection CRUD and a ReadPreference.secondary() read, and keeps writing
//   (w:"majority") while this test runs rs.conf() / rs.reconfig() raising the secondary's priority to 2.
//   The secondary must take over as PRIMARY (priority takeover), the old primary must step down to
//   SECONDARY, the app's writes must resume on the new primary, and every acknowledged write must be there.
//
// Run: node --test tests/node/java_legacy.test.mjs   (from the repository root; needs target/debug/faultline,
// java >= 11 and /usr/share/java/mongo-java-driver.jar: scripts/setup-test-deps.sh installs the last two).
// Env: FAULTLINE_BIN, JAVA (default `java`), MONGO_JAVA_DRIVER_JAR, FAULTLINE_KEEP_TMP=1.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import {
  REPO_ROOT, installCleanup, startMember, freePorts, waitFor, waitForPrimary, waitForStates, adminCommand, stateCounts,
} from './lib/cluster.mjs';

installCleanup();

const JAVA = process.env.JAVA ?? 'java';
const DRIVER_JAR = process.env.MONGO_JAVA_DRIVER_JAR ?? '/usr/share/java/mongo-java-driver.jar';
const APP = path.join(REPO_ROOT, 'tests/java/LegacyTutorial.java');
const SETUP_HINT = 'run scripts/setup-test-deps.sh (it installs default-jdk-headless and libmongodb-java)';

/** Fails with a clear message unless a JDK that can launch single-file programs (11+) and the jar are here. */
function checkJavaPrerequisites() {
  const version = spawnSync(JAVA, ['-version'], { encoding: 'utf8' });
  if (version.error) {
    assert.fail(`cannot run \`${JAVA}\` (${version.error.code ?? version.error.message}): ${SETUP_HINT}`);
  }
  const text = `${version.stderr}${version.stdout}`;
  const m = text.match(/version "(\d+)(?:\.(\d+))?/); // "1.8.0_x" is Java 8, "17.0.15" is Java 17
  const major = m ? Number(m[1] === '1' ? m[2] : m[1]) : NaN;
  if (!(major >= 11)) assert.fail(`\`${JAVA} -version\` says ${JSON.stringify(text.split('\n')[0])}: need Java 11+ to launch a .java file; ${SETUP_HINT}`);
  if (!fs.existsSync(DRIVER_JAR)) assert.fail(`the legacy MongoDB Java driver is missing (${DRIVER_JAR}): ${SETUP_HINT}`);
  if (!fs.existsSync(APP)) assert.fail(`the tutorial app is missing: ${APP}`);
  return text.split('\n')[0];
}

// --- the Java app as a child process ---------------------------------------------------------------------

const apps = new Set();
process.on('exit', () => { for (const app of apps) app.kill(); });
after(() => { for (const app of apps) app.kill(); });

class JavaApp {
  constructor(hosts, extraArgs = []) {
    this.stdoutLines = [];
    this.stderr = '';
    this.exit = null; // { code, signal } once it exited
    this.child = spawn(JAVA, ['-cp', DRIVER_JAR, APP, hosts.join(','), ...extraArgs], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    apps.add(this);
    let partial = '';
    this.child.stdout.on('data', (chunk) => {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) this.stdoutLines.push({ at: Date.now(), line: line.trimEnd() });
    });
    this.child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk.toString()).slice(-200_000); });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        if (partial) this.stdoutLines.push({ at: Date.now(), line: partial });
        this.exit = { code, signal };
        apps.delete(this);
        resolve(this.exit);
      });
      this.child.on('error', (err) => {
        this.exit = { code: null, signal: null, error: err };
        apps.delete(this);
        resolve(this.exit);
      });
    });
    this.child.stdin.on('error', () => {}); // EPIPE if it already exited
  }

  kill() {
    if (this.exit === null) this.child.kill('SIGKILL');
  }

  lines(prefix) {
    return this.stdoutLines.filter((l) => l.line.startsWith(prefix));
  }

  /** The FATAL line, compile errors and the driver's warnings, for a failure message. */
  report() {
    const fatal = this.lines('FATAL').map((l) => l.line);
    const stderrLines = this.stderr.split('\n');
    const compile = stderrLines.filter((l) => /LegacyTutorial\.java:\d+: error|error: compilation failed/.test(l));
    // The driver logs through java.util.logging: keep its headline lines and exception lines, not stack frames.
    const driver = [...new Set(stderrLines.filter((l) => /^(WARNING|SEVERE): |^INFO: Exception|^[\w.$]+(Exception|Error): /.test(l)))].slice(-12);
    return [
      `java exit: ${JSON.stringify(this.exit)}`,
      fatal.length ? `app: ${fatal.join('\n')}` : null,
      compile.length ? `compile errors:\n${compile.join('\n')}` : null,
      `last stdout lines:\n${this.stdoutLines.slice(-15).map((l) => l.line).join('\n')}`,
      driver.length ? `driver log (distinct exceptions/warnings, last 12):\n${driver.join('\n')}` : null,
      compile.length || driver.length ? null : `stderr tail:\n${this.stderr.slice(-3_000)}`,
    ].filter(Boolean).join('\n');
  }

  /**
   * Polls until `predicate()` is truthy (returns its value); fails at once, with the app's output, if the app
   * exits first, and after `timeoutMs` with `what`.
   */
  async waitUntil(what, predicate, timeoutMs) {
    const start = Date.now();
    for (;;) {
      const value = predicate();
      if (value) return value;
      if (this.exit !== null) {
        assert.fail(`the Java app exited while the test waited for ${what}\n${this.report()}`);
      }
      if (Date.now() - start > timeoutMs) {
        assert.fail(`timed out after ${(timeoutMs / 1000).toFixed(0)}s waiting for ${what}\n${this.report()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** `key=value` pairs of one output line (values run to the next space, except ex= which runs to the end). */
function fields(line) {
  const out = {};
  const ex = line.indexOf(' ex=');
  const head = ex >= 0 ? line.slice(0, ex) : line;
  for (const m of head.matchAll(/(\w+)=(\S*)/g)) out[m[1]] = m[2];
  if (ex >= 0) out.ex = line.slice(ex + 4);
  return out;
}

// --- the test --------------------------------------------------------------------------------------------

test('legacy Java 3.x driver tutorial: CRUD, secondary read, writes survive a priority takeover', { timeout: 180_000 }, async (t) => {
  const javaVersion = checkJavaPrerequisites();
  t.diagnostic(`java: ${javaVersion}; driver jar: ${fs.realpathSync(DRIVER_JAR)}`);

  // Three members from YAML configs (replication.replSetName: myset), as the tutorial's mongod.conf files.
  const ports = await freePorts(3);
  const members = await Promise.all(ports.map((port) => startMember({ port, replSet: 'myset' })));
  const hosts = members.map((m) => m.host);
  const [h1, h2, h3] = hosts;
  const logs = () => members.map((m) => `--- ${m.host} log tail:\n${m.logTail(15)}`).join('\n');

  await adminCommand(h1, {
    replSetInitiate: {
      _id: 'myset',
      members: [{ _id: 0, host: h1 }, { _id: 1, host: h2 }, { _id: 2, host: h3, arbiterOnly: true }],
    },
  });
  const primary = await waitForPrimary([h1, h2], 60_000);
  const secondary = primary === h1 ? h2 : h1;
  await waitForStates(primary, `PRIMARY ${primary}, SECONDARY ${secondary}, ARBITER ${h3}`, (s) =>
    s[primary] === 'PRIMARY' && s[secondary] === 'SECONDARY' && s[h3] === 'ARBITER', 60_000);
  t.diagnostic(`set up: primary ${primary}, secondary ${secondary}, arbiter ${h3}`);

  const app = new JavaApp(hosts);
  try {
    // Compile + connect + CRUD + the secondary read. (The driver's server selection timeout is 30 s.)
    await app.waitUntil('PHASE loop-start (connect, CRUD and the secondary read)', () => app.lines('PHASE loop-start')[0], 60_000);
    for (const l of app.lines('PHASE')) t.diagnostic(`app: ${l.line}`);
    const secondaryRead = fields(app.lines('PHASE secondary-read-ok')[0].line);
    assert.equal(secondaryRead.server, secondary, 'the ReadPreference.secondary() read was served by the secondary');

    await app.waitUntil('10 acknowledged loop writes before the reconfig', () => app.lines('WRITE ok').length >= 10, 20_000);
    const preErrors = app.lines('WRITE error');
    assert.equal(preErrors.length, 0, `writes failed before any change of primary:\n${preErrors.map((l) => l.line).join('\n')}`);

    // rs.conf(), raise the secondary's priority, rs.reconfig(cfg) with version + 1 (as mongosh does).
    const { config } = await adminCommand(primary, { replSetGetConfig: 1 });
    const target = config.members.find((m) => m.host === secondary);
    assert.ok(target, `rs.conf() lists ${secondary}: ${JSON.stringify(config.members)}`);
    target.priority = 2;
    config.version += 1;
    const reconfigAt = Date.now();
    await adminCommand(primary, { replSetReconfig: config });
    t.diagnostic(`reconfig to version ${config.version}: ${secondary} priority 2`);

    // Priority takeover: the secondary becomes PRIMARY, the old primary steps down to SECONDARY.
    await waitFor(`${secondary} to take over as PRIMARY after the priority change`, async () => {
      const hello = await adminCommand(secondary, { hello: 1 }, { serverSelectionTimeoutMS: 1_500 });
      return hello.isWritablePrimary === true;
    }, 60_000, { interval: 100 }).catch((err) => {
      err.message += `\n${logs()}`;
      throw err;
    });
    const takeoverAt = Date.now();
    t.diagnostic(`priority takeover: ${secondary} PRIMARY ${takeoverAt - reconfigAt} ms after the reconfig`);
    const states = await waitForStates(secondary, `${primary} to step down to SECONDARY`, (s) =>
      s[secondary] === 'PRIMARY' && s[primary] === 'SECONDARY' && s[h3] === 'ARBITER', 60_000);
    assert.deepEqual(stateCounts(states), { PRIMARY: 1, SECONDARY: 1, ARBITER: 1 });
    assert.equal(await waitForPrimary(hosts, 10_000), secondary, 'exactly one primary, the new one');

    // The app's writes resume on the new primary (as the driver sees it).
    await app.waitUntil(`20 acknowledged writes on the new primary ${secondary} after the takeover`,
      () => app.lines('WRITE ok').filter((l) => l.at > takeoverAt && fields(l.line).primary === secondary).length >= 20, 40_000);
    app.child.stdin.write('stop\n');
    await app.waitUntil('the app to print SUMMARY and exit after "stop"', () => app.exit, 20_000);
    assert.equal(app.exit.code, 0, `the Java app exits 0\n${app.report()}`);

    // The app's own summary agrees with its per-write lines.
    const summaryLine = app.lines('SUMMARY')[0]?.line;
    assert.ok(summaryLine, `a SUMMARY line\n${app.report()}`);
    const summary = fields(summaryLine);
    const okSeqs = app.lines('WRITE ok').map((l) => Number(fields(l.line).seq));
    const errors = app.lines('WRITE error');
    assert.equal(Number(summary.ok), okSeqs.length, 'SUMMARY ok= counts the WRITE ok lines');
    assert.equal(Number(summary.failed), errors.length, 'SUMMARY failed= counts the WRITE error lines');
    assert.deepEqual(summary.primaries.split('>'), [primary, secondary], 'the driver saw the old primary, then the new one');

    // Every acknowledged (w:"majority") write is there afterwards, read at majority from the new primary.
    const client = new MongoClient(`mongodb://${hosts.join(',')}/?replicaSet=myset`, { serverSelectionTimeoutMS: 10_000 });
    let stored;
    try {
      stored = await client.db('mydb').collection('writeLoop')
        .find({}, { readConcern: { level: 'majority' }, projection: { _id: 1 } }).toArray();
    } finally {
      await client.close();
    }
    const storedIds = new Set(stored.map((d) => Number(d._id)));
    const missing = okSeqs.filter((s) => !storedIds.has(s));
    assert.deepEqual(missing, [], `acknowledged writes missing after the takeover (${missing.length} of ${okSeqs.length})`);
    const failedSeqs = new Set(errors.map((l) => Number(fields(l.line).seq)));
    const unexpected = [...storedIds].filter((id) => !okSeqs.includes(id) && !failedSeqs.has(id));
    assert.deepEqual(unexpected, [], 'no document the app never tried to write');

    const errorKinds = {};
    for (const l of errors) {
      const kind = (fields(l.line).ex ?? '').slice(0, 160);
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    }
    t.diagnostic(`writes: ${summaryLine}`);
    t.diagnostic(`write gap (longest time between two acknowledged writes): ${summary.maxGapMs} ms; ` +
      `failed writes (indeterminate): ${errors.length}; of those found stored: ${[...failedSeqs].filter((s) => storedIds.has(s)).length}`);
    for (const [kind, n] of Object.entries(errorKinds)) t.diagnostic(`write error x${n}: ${kind}`);
  } catch (err) {
    if (app.exit === null) app.kill();
    if (!/java exit:/.test(err.message)) {
      await Promise.race([app.exited, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      t.diagnostic(`the Java app at the failure:\n${app.report()}`);
    }
    throw err;
  }
});
