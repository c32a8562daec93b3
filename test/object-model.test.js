'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fc = require('fast-check');
const { parseDdf, DdfError } = require('../dist/lib/model/ddf');
const { parseXml, XmlError } = require('../dist/lib/model/xml');
const { ObjectModel } = require('../dist/lib/model/object-model');

const registryDir = path.join(__dirname, '..', '..', 'shared', 'lwm2m-registry');
const fixtures = path.join(__dirname, 'fixtures', 'objects');

describe('object model', () => {
  it('holds the OMA registry objects with names, types and operations', () => {
    const model = ObjectModel.builtIn();
    assert.ok(model.objects().length >= 300);
    const device = model.getObject(3);
    assert.equal(device.name, 'Device');
    assert.equal(device.multiple, false);
    assert.deepEqual(
      { ...device.resources[13], description: undefined },
      { id: 13, name: 'Current Time', operations: 'RW', multiple: false, mandatory: false, type: 'time', description: undefined },
    );
    assert.equal(model.getResource(3, 4).type, 'none');
    assert.equal(model.getResource(1, 1).units, 's');
    assert.equal(model.getResource(3303, 5700).type, 'float');
    assert.equal(model.getResource(1, 10).type, 'objlnk');
  });

  it('matches every DDF file of the registry it was generated from, the older versions in version_history too', function () {
    if (!fs.existsSync(registryDir)) this.skip();
    const model = ObjectModel.builtIn();
    const files = fs.readdirSync(registryDir).filter((f) => /^\d+\.xml$/.test(f));
    for (const file of files) {
      for (const definition of parseDdf(fs.readFileSync(path.join(registryDir, file), 'utf8'))) {
        assert.deepEqual(model.getObject(definition.id), definition, file);
        assert.deepEqual(model.getObject(definition.id, definition.version), definition, file);
      }
    }
    const history = path.join(registryDir, 'version_history');
    let versions = 0;
    for (const file of fs.readdirSync(history).filter((f) => /^\d+-\d+_\d+\.xml$/.test(f))) {
      const [, id, major, minor] = /^(\d+)-(\d+)_(\d+)\.xml$/.exec(file);
      const xml = fs.readFileSync(path.join(history, file), 'utf8');
      const [definition] = parseDdf(xml);
      // Old files state no version: their name does.
      if (!/<ObjectVersion>/.test(xml)) definition.version = `${major}.${minor}`;
      const held = model.getObject(Number(id), `${major}.${minor}`);
      assert.equal(held.version, `${major}.${minor}`, file);
      // A version_history copy of the current version may differ in wording; the current file is the one kept.
      if (model.getObject(Number(id)).version !== held.version) assert.deepEqual(held, JSON.parse(JSON.stringify(definition)), file);
      versions++;
    }
    assert.ok(versions > 400, `${versions} files in version_history`);
  });

  it('adds custom DDF files from a folder and reports the broken ones', () => {
    const { model, problems } = ObjectModel.fromFolder(fixtures);
    const streetlight = model.getObject(32769);
    assert.equal(streetlight.name, 'Streetlight');
    assert.equal(streetlight.description, 'A dimmable street lamp & its <sensor>.');
    assert.equal(model.getResource(32769, 2).type, 'unsigned');
    assert.equal(model.getResource(32769, 0).units, '%');
    assert.equal(model.getObject(3).name, 'Device', 'built-in objects stay');
    assert.equal(problems.length, 1);
    assert.match(problems[0], /32770-broken\.xml: object 32770 resource 0: unknown type "colour"/);
  });

  it('reports a folder that does not exist', () => {
    const { problems } = ObjectModel.fromFolder(path.join(fixtures, 'missing'));
    assert.match(problems[0], /ENOENT/);
  });

  for (const [name, xml, pattern] of [
    ['not XML', 'hello', /no root element|text outside/],
    ['an unclosed element', '<LWM2M><Object>', /never closed/],
    ['a mismatched end tag', '<LWM2M><Object></LWM2M>', /does not close/],
    ['a DTD', '<!DOCTYPE x [<!ENTITY a "b">]><LWM2M/>', /DTDs/],
    ['an unknown entity', '<LWM2M><Object><Name>&bogus;</Name></Object></LWM2M>', /unknown entity/],
    ['another root', '<Objects/>', /not <LWM2M>/],
    ['no object', '<LWM2M></LWM2M>', /no <Object>/],
    ['a non-numeric object id', '<LWM2M><Object><Name>x</Name><ObjectID>abc</ObjectID></Object></LWM2M>', /ObjectID "abc"/],
    ['duplicate resources', '<LWM2M><Object><Name>x</Name><ObjectID>5000</ObjectID><Resources><Item ID="1"><Name>a</Name><Type>String</Type></Item><Item ID="1"><Name>b</Name><Type>String</Type></Item></Resources></Object></LWM2M>', /twice/],
  ]) {
    it(`rejects a DDF with ${name}`, () => assert.throws(() => parseDdf(xml), (error) => error instanceof DdfError && pattern.test(error.message)));
  }

  it('never throws anything but DdfError on random input', () => {
    const fragment = fc.constantFrom('<LWM2M>', '</LWM2M>', '<Object>', '</Object>', '<Item ID="1">', '</Item>', '<Name>', '</Name>', '<Type>', 'Integer', '</Type>', '<![CDATA[', ']]>', '<!--', '-->', '&amp;', '&', '<', '>', '"', 'x');
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 30 }), (parts) => {
        try {
          parseDdf(parts.join(''));
        } catch (error) {
          assert.ok(error instanceof DdfError, String(error));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('reads attributes with ">" inside quotes and entities', () => {
    const root = parseXml('<a x="1>2" y=\'&lt;&#65;&#x42;\'><b/>t&amp;u</a>');
    assert.deepEqual(root.attributes, { x: '1>2', y: '<AB' });
    assert.equal(root.children[0].name, 'b');
    assert.equal(root.text, 't&u');
    assert.throws(() => parseXml('<a b="1" c></a>'), XmlError);
  });
});
