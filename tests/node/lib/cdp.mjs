// A minimal headless-Chromium driver over the DevTools protocol on a pipe (--remote-debugging-pipe: commands
// go to the browser's fd 3, replies and events come back on fd 4, each message a JSON text ended by a NUL
// byte). No npm dependency and no WebSocket: enough to open a page, evaluate script, move the mouse and take
// screenshots.
//
//   const browser = await launchChromium();
//   const page = await browser.open('file:///tmp/viewer.html');
//   const title = await page.evaluate('document.title');
//   await browser.close();
//
// The browser is $CHROMIUM_BIN, else the first of chromium, chromium-browser, google-chrome on PATH.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';

/** The Chromium executable, or null when none is installed. */
export function findChromium() {
  if (process.env.CHROMIUM_BIN) return process.env.CHROMIUM_BIN;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return null;
}

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 10_000, interval = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await pause(interval);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

class Browser {
  constructor(child, profile) {
    this.child = child;
    this.profile = profile;
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = Buffer.alloc(0);
    this.exited = false;
    this.stderr = '';
    child.stdio[4].on('data', (chunk) => this.receive(chunk));
    child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-4000); });
    child.on('exit', () => {
      this.exited = true;
      for (const { reject } of this.pending.values()) reject(new Error(`chromium exited: ${this.stderr}`));
      this.pending.clear();
    });
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    let end;
    while ((end = this.buffer.indexOf(0)) >= 0) {
      const message = JSON.parse(this.buffer.subarray(0, end).toString('utf8'));
      this.buffer = this.buffer.subarray(end + 1);
      const waiter = message.id !== undefined && this.pending.get(message.id);
      if (!waiter) continue;
      this.pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
      else waiter.resolve(message.result);
    }
  }

  /** Sends a command (to a page when `sessionId` is given) and resolves with its result. */
  send(method, params = {}, sessionId = undefined, timeoutMs = 15_000) {
    if (this.exited) return Promise.reject(new Error(`chromium exited: ${this.stderr}`));
    const id = this.nextId++;
    const message = { id, method, params };
    if (sessionId) message.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdio[3].write(JSON.stringify(message) + '\0');
    });
  }

  /** Opens `url` in a new page of `width`×`height` CSS pixels. */
  async open(url, { width = 1400, height = 900 } = {}) {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Page.navigate', { url });
    await waitFor(`${url} to load`, () => page.evaluate('document.readyState === "complete"'));
    return page;
  }

  async close() {
    if (!this.exited) {
      this.send('Browser.close').catch(() => {});
      await waitFor('chromium to exit', () => this.exited, 5_000).catch(() => this.child.kill('SIGKILL'));
    }
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
  }

  send(method, params = {}) {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Evaluates a JavaScript expression in the page (awaiting promises) and returns its JSON value. */
  async evaluate(expression) {
    const { result, exceptionDetails } = await this.send('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (exceptionDetails) {
      const text = exceptionDetails.exception?.description ?? exceptionDetails.text;
      throw new Error(`evaluating ${expression}: ${text}`);
    }
    return result.value;
  }

  /** Moves the mouse to (x, y) in CSS pixels of the viewport. */
  async hover(x, y) {
    await this.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x, y, button: 'none' });
  }

  /** A PNG screenshot of the viewport. */
  async screenshot() {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' });
    return Buffer.from(data, 'base64');
  }
}

/** Starts headless Chromium with a throw-away profile. */
export async function launchChromium(executable = findChromium()) {
  if (!executable) throw new Error('no Chromium found: run scripts/setup-test-deps.sh (apt-get install chromium)');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'faultline-chromium-'));
  const args = [
    '--headless=new',
    '--remote-debugging-pipe',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-background-networking',
    '--allow-file-access-from-files',
    `--user-data-dir=${profile}`,
    'about:blank',
  ];
  const child = spawn(executable, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const browser = new Browser(child, profile);
  await waitFor('chromium to answer', () => browser.send('Browser.getVersion', {}, undefined, 2_000), 20_000, 200);
  return browser;
}
