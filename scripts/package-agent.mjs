#!/usr/bin/env node
// npm run package:agent [-- --deb]: bundles the edge agent into dist/agent/rebootctl-agent.mjs (no node_modules, no native
// code: the same file runs on x64 and arm64 with any Node >= 22) and the daemon alone next to it (rebootctl-agent-daemon.mjs,
// optional: without it the bundle runs the daemon itself), and with --deb builds a .deb around them.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const OUT_DIR = join(ROOT, 'dist/agent');
const OUT = join(OUT_DIR, 'rebootctl-agent.mjs');
const DAEMON_OUT = join(OUT_DIR, 'rebootctl-agent-daemon.mjs');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/**
 * `import … from 'node:x'` in a bundle is hoisted to the top of the one file, so the daemon would
 * build every built-in's ES module namespace that any CLI command imports (crypto, process, util,
 * fs/promises…: ~3 MB of RSS for the idle daemon). Each becomes a CommonJS shim over
 * process.getBuiltinModule, evaluated only when the module importing it is (the CLI's modules are
 * imported dynamically, so never in the daemon).
 */
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'lazy-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

mkdirSync(OUT_DIR, { recursive: true });
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: 'none',
  metafile: true,
  // commander (mqtt in the daemon) is CommonJS: its require() of Node built-ins needs a real require in an ES module.
  banner: {
    js: [
      '#!/usr/bin/env node',
      `// rebootctl-agent ${version}: the edge agent of xpu-reboot-coordinator, bundled (node rebootctl-agent.mjs agent --help).`,
      // Node 22.0-22.2 have no process.getBuiltinModule, which every built-in of the bundle goes through (above):
      // there it is require() itself. Only those Nodes pay for node:module's namespace.
      "if (typeof process.getBuiltinModule !== 'function') { const r = (await import('node:module')).createRequire(import.meta.url); process.getBuiltinModule = (id) => r(id); }",
      "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);",
    ].join('\n'),
  },
  logLevel: 'warning',
  plugins: [lazyBuiltins],
};
const outputs = [
  // The daemon's `if (import.meta.main)` must not fire inside the CLI bundle: the entry decides.
  { entryPoints: [join(ROOT, 'agent/bundle-entry.ts')], outfile: OUT, define: { 'import.meta.main': 'false' } },
  // The daemon alone, which the bundle re-executes into when it lies next to it (agent/daemon.ts, DAEMON_BUNDLE):
  // the idle daemon does not keep the CLI's code. It starts through its own `if (import.meta.main)`.
  // It is only ever run, never imported, and import.meta.main is undefined before Node 22.18 / 24.2: were it left to
  // the runtime, a Node 22.15-22.17 (execve, so the re-exec, but no import.meta.main) would start a daemon that exits.
  { entryPoints: [join(ROOT, 'agent/daemon.ts')], outfile: DAEMON_OUT, define: { 'import.meta.main': 'true' } },
];
for (const o of outputs) {
  const result = await build({ ...common, ...o });
  // No native addon may slip in: the file must run on any architecture.
  const native = Object.keys(result.metafile.inputs).filter((f) => f.endsWith('.node'));
  if (native.length) throw new Error(`native modules in the agent bundle: ${native.join(', ')}`);
  const forbidden = Object.keys(result.metafile.inputs).filter((f) => /@aws-sdk|dynalite|classic-level|fauxqs|aws-cdk/.test(f));
  if (forbidden.length) throw new Error(`server dependencies in the agent bundle: ${forbidden.slice(0, 5).join(', ')}`);
  chmodSync(o.outfile, 0o755);
  process.stdout.write(
    `wrote ${o.outfile} (${Math.round(statSync(o.outfile).size / 1024)} KiB, ${Object.keys(result.metafile.inputs).length} modules)\n`,
  );
}

if (process.argv.includes('--deb')) {
  const script = join(ROOT, 'agent/packaging/build-deb.sh');
  execFileSync(script, [OUT, version, OUT_DIR], { stdio: 'inherit' });
}
