'use strict';
// Execute arguments against the ABNF of the LwM2M TS (1.0.2 section 5.4.5, Core 1.1.1 section 6.3.5):
//   arglist = arg *( "," arg )
//   arg     = DIGIT / DIGIT "=" "'" *CHAR "'"
//   CHAR    = "!" / %x23-26 / %x28-5B / %x5D-7E
// and OMA's answers on white space (none anywhere, OMA_LwM2M_for_Developers#487) and on
// digits (each names one argument, once: #536).
const assert = require('node:assert/strict');
const fc = require('fast-check');
const { formatArguments, ExecuteRequest } = require('../dist/lib/lwm2m/requests/execute');
const { ContentError } = require('../dist/lib/content/values');
const { Lwm2mPath } = require('../dist/lib/model/path');

// The grammar transcribed as a regular expression: the oracle the parser is checked against.
const CHAR = "[!#-&(-\\[\\]-~]";
const ARG = `[0-9](?:='${CHAR}*')?`;
const ARGLIST = new RegExp(`^${ARG}(?:,${ARG})*$`);
const ARGUMENT_DIGIT = new RegExp(`([0-9])(?:='${CHAR}*')?,?`, 'y');
const CHARS = [...Array(0x7f).keys()].map((code) => String.fromCharCode(code)).filter((char) => /^[!#-&(-\[\]-~]$/.test(char));

function grammarAccepts(text) {
  if (!ARGLIST.test(text)) return false;
  const digits = [];
  ARGUMENT_DIGIT.lastIndex = 0;
  for (let match; (match = ARGUMENT_DIGIT.exec(text)); ) digits.push(match[1]);
  return new Set(digits).size === digits.length;
}

describe('execute arguments (LwM2M ABNF)', () => {
  for (const text of ["0='a,b'", '5', "2='10.3'", '0,1,2,3,4', "0=''", "7,0='https://www.omaspecworks.org'", "9='!#$%&()*+,-./:;<=>?@[]^_`{|}~'", "0=',',1=''"]) {
    it(`accepts ${text}`, () => assert.equal(formatArguments(text), text));
  }

  for (const [text, pattern] of [
    ["0='a b'", /" " at character 4 is not allowed in a value/],
    ["7, 0='https://www.omaspecworks.org'", /expected an argument digit 0-9 at character 2, not " "/],
    ["0 = 'x'", /expected , between arguments at character 1, not " "/],
    ['0,0', /argument 0 is given twice/],
    ["1,0='x',1='y'", /argument 1 is given twice/],
    ['0=x', /expected ' after 0= at character 2/],
    ["0='x", /the value of argument 0 has no closing '/],
    ["0='it's'", /expected , between arguments at character 6/],
    ["0='a\"b'", /"\\"" at character 4 is not allowed/],
    ["0='a\\b'", /"\\\\" at character 4 is not allowed/],
    ["0='é'", /"é" at character 3 is not allowed/],
    ["0='\t'", /"\\t" at character 3 is not allowed/],
    [',', /expected an argument digit 0-9 at character 0/],
    ['0,', /expected an argument digit 0-9 at character 2$/],
    ['10', /expected , between arguments at character 1, not "0"/],
    ['a', /expected an argument digit/],
  ]) {
    it(`refuses ${JSON.stringify(text)} with the reason`, () => {
      assert.throws(() => formatArguments(text), (error) => error instanceof ContentError && /^invalid execute arguments/.test(error.message) && pattern.test(error.message));
    });
  }

  it('builds arguments from an object, refusing values the grammar cannot carry', () => {
    assert.equal(formatArguments({ 0: 'a,b', 1: null, 2: 10.5, 3: '' }), "0='a,b',1,2='10.5',3");
    assert.throws(() => formatArguments({ 0: 'a b' }), /execute argument 0: " " is not allowed in a value/);
    assert.throws(() => formatArguments({ 0: "it's" }), /execute argument 0: "'" is not allowed in a value/);
    assert.throws(() => formatArguments({ x: 1 }), /expected an argument digit/);
  });

  it('refuses before a request exists, so nothing is sent', () => {
    assert.throws(() => new ExecuteRequest(Lwm2mPath.parse('/3/0/4'), "0='a b'"), ContentError);
    assert.equal(new ExecuteRequest(Lwm2mPath.parse('/3/0/4'), "0='a,b'").args, "0='a,b'");
  });

  it('accepts every argument list the grammar produces, unchanged', () => {
    const argument = fc.tuple(fc.option(fc.stringOf(fc.constantFrom(...CHARS), { maxLength: 12 }), { nil: undefined }));
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 10 }), fc.array(argument, { minLength: 10, maxLength: 10 }), (digits, values) => {
        const text = digits.map((digit, i) => (values[i][0] === undefined ? `${digit}` : `${digit}='${values[i][0]}'`)).join(',');
        assert.equal(formatArguments(text), text);
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts exactly what the grammar accepts, on random text of its tricky characters', () => {
    const tricky = fc.stringOf(fc.constantFrom('0', '1', '7', '=', "'", ',', ' ', '"', '\\', 'a', '!', '~', 'é', '\t'), { maxLength: 16 });
    fc.assert(
      fc.property(tricky, (text) => {
        const trimmed = text.trim();
        let accepted;
        try {
          accepted = formatArguments(text);
        } catch (error) {
          assert.ok(error instanceof ContentError, `${error.name}: ${error.message}`);
        }
        if (trimmed === '') assert.equal(accepted, '');
        else if (grammarAccepts(trimmed)) assert.equal(accepted, trimmed);
        else assert.equal(accepted, undefined, `${JSON.stringify(text)} was accepted`);
      }),
      { numRuns: 20000 },
    );
  });
});
