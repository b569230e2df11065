import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import {
  InvalidParameterError, choiceFlag, describeRange, intFlag, invalidParameterError, is, listFlag, numberFlag, parseInteger, parseList, parseNumber,
} from '../common/flags.ts';
import { UserError } from '../manifests/errors.ts';

describe('common/flags: one validator for every CLI flag', () => {
  it('states the allowed range, not just the violated bound', () => {
    expect(() => parseInteger('--workers', '1000', { min: 1, max: 256 })).toThrow('--workers: expected an integer from 1 to 256, got "1000"');
    expect(() => parseInteger('--workers', '0', { min: 1, max: 256 })).toThrow('--workers: expected an integer from 1 to 256, got "0"');
    expect(() => parseInteger('--epochs', '2.5', { min: 1 })).toThrow('--epochs: expected an integer ≥ 1, got "2.5"');
    expect(() => parseNumber('--lr', '0', 'number', { min: 0, minExclusive: true })).toThrow('--lr: expected a number > 0, got "0"');
    expect(() => parseNumber('--momentum', '1', 'number', { min: 0, max: 1, maxExclusive: true })).toThrow('--momentum: expected a number ≥ 0 and < 1, got "1"');
    expect(() => parseNumber('--x', 'abc', 'number')).toThrow('--x: expected a number, got "abc"');
  });

  it('accepts exactly what a person writes as a number', () => {
    expect(parseInteger('--n', '256', { min: 1, max: 256 })).toBe(256);
    expect(parseInteger('--n', '-3')).toBe(-3);
    expect(parseNumber('--lr', '5e-3', 'number', { min: 0, minExclusive: true })).toBe(0.005);
    expect(parseNumber('--r', '.5', 'number')).toBe(0.5);
    // Number('') is 0, Number('0x10') is 16, Number('1_000') is NaN: only decimal text counts.
    for (const bad of ['', ' ', '0x10', '1e', 'Infinity', 'NaN', '1,5']) expect(() => parseNumber('--r', bad, 'number'), bad).toThrow(InvalidParameterError);
  });

  it('errors are UserErrors (printed without a stack, exit 2) carrying the parts', () => {
    const e = invalidParameterError('--size', 'an integer ≥ 8', 3);
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe('--size: expected an integer ≥ 8, got 3');
    expect([e.parameter, e.expected, e.actual]).toEqual(['--size', 'an integer ≥ 8', 3]);
  });

  it('enumerations and lists name every allowed value', () => {
    expect(() => choiceFlag('--backend', ['auto', 'wasm', 'cpu'] as const)('gpu')).toThrow('--backend: expected one of auto, wasm, cpu, got "gpu"');
    expect(choiceFlag('--backend', ['auto', 'wasm'] as const)('wasm')).toBe('wasm');
    expect(parseList('--methods', ' cf-tile, f-random ,,')).toEqual(['cf-tile', 'f-random']);
    expect(() => parseList('--methods', ',', { nonEmpty: true })).toThrow('--methods: expected a comma-separated list of at least one item, got ","');
    expect(() => parseList('--splits', 'train,tset', { choices: ['train', 'val', 'test'] })).toThrow(/expected a comma-separated list of train, val, test, got "train,tset"\n {2}fix: "tset" is not one of them/);
    expect(() => parseList('--methods', 'cf-grey,cf-grey')).toThrow(/without repeats[\s\S]*"cf-grey" appears twice/);
  });

  it('describeRange and is.* agree on the ends', () => {
    expect(describeRange('integer', { min: 0 })).toBe('an integer ≥ 0');
    expect(describeRange('number', { max: 1, maxExclusive: true })).toBe('a number < 1');
    expect(describeRange('number', { min: 0, max: 1 })).toBe('a number from 0 to 1');
    expect(is.inRange(1, { min: 1, max: 1 })).toBe(true);
    expect(is.inRange(1, { min: 1, minExclusive: true })).toBe(false);
    expect(is.integer(1.5)).toBe(false);
    expect(is.number(Infinity)).toBe(false);
  });

  it('plugs into commander: a bad value stops parsing with the validator message', async () => {
    const cmd = new Command('x').exitOverride()
      .option('--workers <n>', '', intFlag('--workers', { min: 1, max: 8 }), 1)
      .option('--rate <r>', '', numberFlag('--rate', { min: 0, max: 1 }))
      .option('--m <list>', '', listFlag('--m', { nonEmpty: true }))
      .action(() => undefined);
    await expect(cmd.parseAsync(['--workers', '9'], { from: 'user' })).rejects.toThrow('--workers: expected an integer from 1 to 8, got "9"');
    const ok = await new Command('y').option('--rate <r>', '', numberFlag('--rate', { min: 0, max: 1 })).action(() => undefined).parseAsync(['--rate', '0.25'], { from: 'user' });
    expect(ok.opts().rate).toBe(0.25);
  });
});
