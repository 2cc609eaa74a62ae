// The typed option checks: what each accepts, and the one wording of a refusal.
import { test } from 'vitest';
import assert from 'node:assert/strict';
import { byteSize, checkOptionValues, fraction, imageSide, nonNegativeInt, positiveInt, positiveIntList, probability, share, yargsFailureLine, type CheckedOption } from '../../src/lib/options.js';

test('each check accepts its range and refuses nonsense', () => {
  const cases: Array<[string, { test(v: unknown): boolean }, unknown[], unknown[]]> = [
    ['positiveInt', positiveInt, [1, 64], [0, -1, 1.5, NaN, Infinity]],
    ['nonNegativeInt', nonNegativeInt, [0, 3], [-1, 0.5, NaN]],
    ['fraction', fraction, [1, 0.5, 1e-9], [0, 1.01, NaN]],
    ['probability', probability, [0, 1, 0.5], [-0.1, 2, NaN]],
    ['share', share, [0, 0.99], [1, -0.1]],
    ['imageSide', imageSide, [1, 16, 1024], [0, 1025, 100000]],
    ['byteSize', byteSize, ['512M', '2G', '4096'], ['12Q', '', '0']],
    ['positiveIntList', positiveIntList, ['1,5,10', '256, 128'], ['0,5', '8,x', '']],
  ];
  for (const [name, check, good, bad] of cases) {
    for (const v of good) assert.ok(check.test(v), `${name} accepts ${String(v)}`);
    for (const v of bad) assert.ok(!check.test(v), `${name} refuses ${String(v)}`);
  }
});

test('a refusal names the option and quotes what was typed', () => {
  const options: Record<string, CheckedOption> = {
    top: { type: 'number', check: positiveInt },
    k: { type: 'number', check: positiveInt },
    metric: { choices: ['cosine', 'dot'] },
  };
  const message = (parsed: Record<string, unknown>, argv: string[]) => {
    try {
      checkOptionValues(options, parsed, argv);
      return null;
    } catch (err) {
      const e = err as Error & { place: { field?: string } };
      return `${e.place.field}: ${e.message}`;
    }
  };
  assert.equal(message({ top: -1 }, ['--top', '-1']), "--top: '-1' is not a positive integer");
  assert.equal(message({ k: NaN }, ['--k=abc']), "--k: 'abc' is not a positive integer");
  assert.equal(message({ k: NaN }, ['-k', 'abc']), "--k: 'abc' is not a positive integer");
  assert.equal(message({ metric: 'l1' }, ['--metric', 'l1']), "--metric: 'l1' is not one of cosine, dot");
  assert.equal(message({ top: 3, metric: 'dot' }, []), null);
});

test("yargs' own failures become one line naming the option", () => {
  const options = { query: { alias: 'q' } };
  assert.equal(yargsFailureLine('Missing required argument: out'), '--out: required');
  assert.equal(yargsFailureLine('Unknown arguments: bogus, x'), '--bogus, -x: unknown option');
  assert.equal(yargsFailureLine('Not enough arguments following: q', options), '--query: needs a value');
  assert.equal(yargsFailureLine('first\n  second'), 'first second');
});
