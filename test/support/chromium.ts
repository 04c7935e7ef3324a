// Gives browser tests a headless Debian Chromium for playwright-core, installing it once per machine when missing.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

// Flags for a sandboxless CI container, and no traffic of Chromium's own (updates, sync, field trials)
// so a test that asserts "no request was attempted" sees only the page's requests.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// One lock per machine: test files run in parallel workers, and apt/dpkg allow one installer at a time.
const LOCK = join(tmpdir(), 'xpu-reboot-coordinator-chromium-install.lock');
const LOG = join(tmpdir(), 'xpu-reboot-coordinator-chromium-install.log');
const INSTALL_TIMEOUT_MS = 15 * 60_000;

let installing: Promise<string> | undefined;

/** The path of a usable Chromium; installs Debian's package (as root) the first time on a machine. */
export function ensureChromium(): Promise<string> {
  if (existsSync(CHROMIUM_PATH)) return Promise.resolve(CHROMIUM_PATH);
  installing ??= installOnce().finally(() => {
    installing = undefined;
  });
  return installing;
}

async function installOnce(): Promise<string> {
  const deadline = Date.now() + INSTALL_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
    const fd = tryLock();
    if (fd !== null) {
      try {
        // Another process may have finished between our check and taking the lock.
        if (!existsSync(CHROMIUM_PATH)) await aptInstall();
      } finally {
        closeSync(fd);
        rmSync(LOCK, { force: true });
      }
      if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
      throw new Error(`apt-get install chromium finished but ${CHROMIUM_PATH} is missing; see ${LOG}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out waiting for another process to install Chromium (lock ${LOCK})`);
}

function tryLock(): number | null {
  try {
    const fd = openSync(LOCK, 'wx');
    writeSync(fd, String(process.pid));
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // A lock left by a process that died would block every later run.
    const pid = Number(readFileSync(LOCK, 'utf8').trim());
    if (pid && !alive(pid)) rmSync(LOCK, { force: true });
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function aptInstall(): Promise<void> {
  if (process.getuid?.() !== 0) {
    return Promise.reject(
      new Error(`${CHROMIUM_PATH} is missing and this is not root: run \`apt-get update && apt-get install -y chromium\` once`),
    );
  }
  // Waits for dpkg's own lock too, in case something else on the machine is installing packages.
  const script = 'apt-get update && apt-get install -y -o DPkg::Lock::Timeout=600 chromium';
  return new Promise((resolve, reject) => {
    const log = openSync(LOG, 'a');
    const child = spawn('sh', ['-c', script], {
      stdio: ['ignore', log, log],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), INSTALL_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      closeSync(log);
      if (code === 0) resolve();
      else reject(new Error(`\`${script}\` failed (${signal ?? `exit ${code}`}); see ${LOG}`));
    });
  });
}

/** A headless Chromium for playwright-core; the caller closes it. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = await ensureChromium();
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}
