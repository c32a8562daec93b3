'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const os = require('node:os');

const root = path.resolve(__dirname, '..');
const pkg = require('../package.json');

/** Every HTTP(S) request through a proxy that is not there: a look-up on the network fails the check. */
const UNREACHABLE_NETWORK = { https_proxy: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' };

describe('package', () => {
  const nodeFiles = Object.entries(pkg['node-red'].nodes);

  it('declares Node-RED >= 4, Node >= 18.5, and node-red only as a devDependency', () => {
    assert.equal(pkg['node-red'].version, '>=4.0.0');
    assert.equal(pkg.engines.node, '>=18.5');
    assert.ok(pkg.keywords.includes('node-red'));
    assert.equal((pkg.dependencies || {})['node-red'], undefined);
    assert.ok(pkg.devDependencies['node-red']);
  });

  for (const [name, file] of nodeFiles) {
    it(`ships ${name} with its editor HTML, messages and help next to it`, () => {
      const dir = path.dirname(path.join(root, file));
      assert.ok(fs.existsSync(path.join(root, file)), file);
      const html = fs.readFileSync(path.join(dir, `${name}.html`), 'utf8');
      assert.match(html, /^<script type="text\/javascript">\s*\(function \(\) \{[\s\S]*?RED\.nodes\.registerType\('[\w-]+', [\s\S]*\}\)\(\);\s*<\/script>/);
      const messages = JSON.parse(fs.readFileSync(path.join(dir, 'locales', 'en-US', `${name}.json`), 'utf8'));
      assert.ok(messages[name], `messages under "${name}"`);
      const help = fs.readFileSync(path.join(dir, 'locales', 'en-US', `${name}.html`), 'utf8');
      const types = [...html.matchAll(/RED\.nodes\.registerType\('([\w-]+)'/g)].map((m) => m[1]);
      assert.ok(types.length > 0);
      for (const type of types) {
        assert.match(help, new RegExp(`data-help-name="${type}"`), `help for ${type}`);
        assert.match(html, new RegExp(`data-template-name="${type}"`), `editor template for ${type}`);
      }
      for (const key of html.matchAll(/data-i18n="(?:\[[a-z]+\])?([\w.-]+)"/g)) {
        const value = key[1].split('.').reduce((object, part) => object && object[part], messages);
        assert.ok(typeof value === 'string', `${name}.html uses ${key[1]} which ${name}.json lacks`);
      }
    });
  }

  it('has an example per non-config node, each opening with a comment node', () => {
    const examples = fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.json'));
    const used = new Set();
    for (const file of examples) {
      const flow = JSON.parse(fs.readFileSync(path.join(root, 'examples', file), 'utf8'));
      assert.equal(flow[0].type, 'comment', `${file} opens with a comment`);
      flow.forEach((node) => used.add(node.type));
    }
    for (const [name] of nodeFiles) {
      const html = fs.readFileSync(path.join(root, 'dist', 'nodes', `${name}.html`), 'utf8');
      for (const [, type, body] of html.matchAll(/RED\.nodes\.registerType\('([\w-]+)', ([\s\S]*?)(?=RED\.nodes\.registerType|$)/g)) {
        if (!/category: 'config'/.test(body)) assert.ok(used.has(type), `an example uses ${type}`);
      }
    }
  });

  it('publishes JavaScript, editor files and examples: no source maps or declarations without their sources', async function () {
    this.timeout(60000);
    const output = await new Promise((resolve, reject) =>
      execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, timeout: 55000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    const files = JSON.parse(output)[0].files.map((file) => file.path);
    assert.deepEqual(files.filter((file) => /\.(map|d\.ts)$/.test(file)), []);
    assert.deepEqual(files.filter((file) => /^(src|test|bench|scripts|\.peers)\//.test(file)), []);
    for (const [name, file] of nodeFiles) {
      assert.ok(files.includes(file), file);
      assert.ok(files.includes(`dist/nodes/${name}.html`), `${name}.html`);
      assert.ok(files.includes(`dist/nodes/locales/en-US/${name}.json`), `${name} messages`);
    }
    assert.ok(files.includes('dist/nodes/icons/lwm2m-observe.svg'));
    assert.ok(files.includes('examples/log-registrations.json'));
  });

  it('passes node-red-dev validate offline, as npm run validate runs it', async function () {
    this.timeout(120000);
    const scorecard = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nrdev-')), 'scorecard.json');
    const run = require.resolve('node-red-dev/bin/run');
    const output = await new Promise((resolve, reject) =>
      execFile(process.execPath, ['-r', path.join(root, 'scripts', 'node-red-dev-offline.js'), run, 'validate', '-o', scorecard], { cwd: root, timeout: 110000, env: { ...process.env, ...UNREACHABLE_NETWORK } }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stdout}${stderr}`)) : resolve(stdout + stderr),
      ),
    );
    const card = JSON.parse(fs.readFileSync(scorecard, 'utf8'));
    const failed = Object.entries(card).filter(([key, value]) => key !== 'package' && value.test !== true);
    assert.deepEqual(failed, [], output);
  });
});
