// Fails fast when an npm script runs on a Node older than the pinned node@24 devDependency.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `xpu-reboot-coordinator needs Node.js >= 24, but this is ${process.versions.node}.\n` +
      'Run it through npm (npm test, npm start): they use the node@24 that `npm ci` installs into node_modules/.bin.',
  );
  process.exit(1);
}
