// The interactive counterexample viewer in a real browser: `faultline check HISTORY --html OUT.html` on a
// history with a stale read during a partition, opened from file:// in headless Chromium (DevTools protocol
// over a pipe, lib/cdp.mjs). Checks that the page starts on the failing key, names and highlights the
// operation that cannot be linearized, shows the model state before and after an operation on hover, draws
// the stale read's own view, and stays quick on a 100,000-operation history. Screenshots are kept in
// tests/node/artifacts/ (gitignored).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchChromium, waitFor } from './lib/cdp.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '../..');
const FAULTLINE_BIN = process.env.FAULTLINE_BIN
  ? path.resolve(REPO_ROOT, process.env.FAULTLINE_BIN)
  : path.join(REPO_ROOT, 'target/debug/faultline');
const ARTIFACTS = path.join(HERE, 'artifacts');
const MS = 1_000_000;

let dir;
let browser;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faultline-viewer-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes events as JSONL, runs `faultline check --html` on them and returns the page's file URL. */
function viewerFor(name, events, expectedExit, extraArgs = []) {
  const history = path.join(dir, `${name}.jsonl`);
  fs.writeFileSync(history, events.map((e, index) => JSON.stringify({ index, ...e })).join('\n') + '\n');
  const out = path.join(dir, `${name}.html`);
  const run = spawnSync(FAULTLINE_BIN, ['check', history, '--html', out, '--model', 'register', ...extraArgs], { encoding: 'utf8' });
  assert.equal(run.status, expectedExit, `faultline check: ${run.stdout}${run.stderr}`);
  assert.ok(fs.existsSync(out), `${out} written`);
  return pathToFileURL(out).href;
}

const op = (time, type, process, f, key, value, node) => ({
  time: time * MS, type, process, f, value: { key, value }, ...(node ? { node } : {}),
});
const nemesis = (time, type, f, value) => ({ time: time * MS, type, process: 'nemesis', f, value });

// Key 1 is linearizable; key 2 has a stale read: n2, cut off by the partition, returns 1 after 2 was acknowledged.
const STALE_READ_HISTORY = [
  op(1, 'invoke', 0, 'write', 1, 10), op(2, 'ok', 0, 'write', 1, 10, 'n1'),
  op(3, 'invoke', 1, 'read', 1, null), op(4, 'ok', 1, 'read', 1, 10, 'n1'),
  op(5, 'invoke', 0, 'write', 2, 1), op(6, 'ok', 0, 'write', 2, 1, 'n1'),
  nemesis(7, 'invoke', 'start-partition', 'isolate n2'), nemesis(7.5, 'info', 'start-partition', 'isolate n2'),
  op(8, 'invoke', 0, 'write', 2, 2), op(9, 'ok', 0, 'write', 2, 2, 'n1'),
  op(10, 'invoke', 2, 'read', 2, null), op(11, 'ok', 2, 'read', 2, 1, 'n2'),
  nemesis(12, 'invoke', 'stop-partition', null), nemesis(12.5, 'info', 'stop-partition', 'healed'),
];

/** Hovers operation `id` and returns what the tooltip shows. */
async function hoverOp(page, id) {
  const at = await page.evaluate(`faultlineViewer.locate(${id})`);
  assert.ok(at, `operation ${id} is on screen`);
  await page.hover(at.x, at.y);
  return waitFor(`the tooltip of operation ${id}`, () => page.evaluate(`(() => {
    const t = document.getElementById('tooltip');
    return !t.hidden && t.dataset.op === '${id}' && { text: t.textContent, before: t.dataset.before, after: t.dataset.after };
  })()`));
}

test('the viewer starts on the failing key, highlights the blocked read and shows states on hover', { timeout: 60_000 }, async () => {
  const page = await browser.open(viewerFor('stale', STALE_READ_HISTORY, 1));
  await waitFor('the viewer script', () => page.evaluate('!!window.faultlineViewer && !!faultlineViewer.key()'));

  const key = await page.evaluate('faultlineViewer.key()');
  assert.equal(key.key, '2', 'the picker starts on the failing key');
  assert.equal(await page.evaluate('document.getElementById("key-picker").value'), '1');
  assert.equal(key.verdict, 'invalid');
  assert.equal(key.blocked, 4, 'the read of key 2 cannot be linearized');
  assert.deepEqual(key.order, [2, 3], 'the longest linearizable prefix: write 1, write 2');

  const note = await page.evaluate('document.getElementById("failure-note").textContent');
  assert.match(note, /process 2 read 1 \(served by n2\).*cannot follow the longest linearizable prefix of 2 operations.*state 2/);

  const blocked = await page.evaluate('faultlineViewer.locate(4)');
  assert.ok(blocked, 'the blocked read is drawn in the initial view');
  const [r, g, b] = await page.evaluate(`faultlineViewer.colourAt(${blocked.x}, ${blocked.y - 6})`);
  assert.ok(r > 180 && g < 110 && b < 110, `the blocked read is drawn red, got rgb(${r}, ${g}, ${b})`);

  const write2 = await hoverOp(page, 3);
  assert.match(write2.text, /process 0 {2}write 2 {2}\[ok\]/);
  assert.match(write2.text, /served by n1/);
  assert.match(write2.text, /linearized #2 of 2: state 1 → 2/);
  assert.deepEqual([write2.before, write2.after], ['1', '2']);

  const read = await hoverOp(page, 4);
  assert.match(read.text, /served by n2/);
  assert.match(read.text, /cannot follow the longest linearizable prefix \(2 ops\): state before 2/);
  assert.deepEqual([read.before, read.after], ['2', '']);
  fs.writeFileSync(path.join(ARTIFACTS, 'viewer-failure.png'), await page.screenshot());

  const faults = await page.evaluate('faultlineViewer.data.faults.map((f) => [f.kind, f.description])');
  assert.deepEqual(faults, [['partition', 'isolate n2']]);
  const shaded = await page.evaluate(`(() => {
    const f = faultlineViewer.data.faults[0];
    const at = faultlineViewer.locate(3); // the write made during the partition: its row, inside the fault
    return faultlineViewer.colourAt(at.x, at.y + 12);
  })()`);
  assert.ok(shaded[0] > 240 && shaded[2] < 235, `the partition is shaded, got rgb(${shaded})`);

  // The stale read's own view: the read, the write it saw (1) and the newer write it missed (2).
  assert.equal(await page.evaluate('document.querySelectorAll("#stale-table tbody tr").length'), 1);
  await page.evaluate('document.querySelector("#stale-table tbody tr").click()');
  const marks = await page.evaluate('[...faultlineViewer.view.mark.entries()]');
  assert.deepEqual(marks.sort(), [[2, 'source'], [3, 'missed'], [4, 'read']]);
  await page.hover(5, 5);
  fs.writeFileSync(path.join(ARTIFACTS, 'viewer-stale-read.png'), await page.screenshot());
});

test('the viewer stays responsive on a 100,000-operation history', { timeout: 60_000 }, async (t) => {
  const events = [];
  const processes = 10;
  let value = 0;
  for (let round = 0; round < 100_000 / processes; round++) {
    for (let p = 0; p < processes; p++) {
      const start = (round * processes + p) * 10;
      const write = p % 2 === 0;
      if (write) value++;
      events.push({ time: start * 1000, type: 'invoke', process: p, f: write ? 'write' : 'read', value: write ? value : null });
      events.push({ time: (start + 8) * 1000, type: 'ok', process: p, f: write ? 'write' : 'read', value, node: `n${p % 3 + 1}` });
    }
  }
  // One key of 100,000 operations: the search is given 2 s (it needs far longer in a debug build), so the
  // verdict is unknown (exit 2) and the page shows every operation without an order.
  const started = performance.now();
  const url = viewerFor('large', events, 2, ['--timeout', '1s']);
  t.diagnostic(`faultline check --html on 100,000 operations: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const page = await browser.open(url);
  await waitFor('the viewer script', () => page.evaluate('!!window.faultlineViewer && !!faultlineViewer.key()'), 20_000);
  const timings = await page.evaluate(`(() => {
    const v = faultlineViewer;
    const time = (fn) => { const t0 = performance.now(); fn(); v.drawNow(); return performance.now() - t0; };
    const whole = time(() => v.fit());
    const zoomed = [];
    for (let i = 0; i < 20; i++) zoomed.push(time(() => v.zoomAround(0.7)));
    return { whole, zoomed: Math.max(...zoomed), ops: v.key().ops.length };
  })()`);
  t.diagnostic(`draw: whole history ${timings.whole.toFixed(1)} ms, zoomed (worst of 20) ${timings.zoomed.toFixed(1)} ms`);
  assert.equal(timings.ops, 100_000);
  assert.ok(timings.whole < 400, `drawing the whole history took ${timings.whole} ms`);
  assert.ok(timings.zoomed < 250, `a zoomed redraw took ${timings.zoomed} ms`);
  await page.evaluate('faultlineViewer.fit(), faultlineViewer.zoomAround(0.001), faultlineViewer.drawNow()');
  const middle = await page.evaluate('faultlineViewer.key().ops[50_000]');
  const hovered = await hoverOp(page, middle);
  assert.match(hovered.text, /process 0 {2}write 25001 {2}\[ok\]/);
  assert.match(hovered.text, /served by n1/);
  assert.match(hovered.text, /undecided: the search ran out of budget/);
  fs.writeFileSync(path.join(ARTIFACTS, 'viewer-100k.png'), await page.screenshot());
});
