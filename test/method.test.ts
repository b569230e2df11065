import { describe, it, expect } from 'vitest';
import { parseMethod, parseCfLoss, methodSlug, needsMasks, METHOD_DEFAULTS } from '../trainer/method.ts';
import { UserError } from '../manifests/errors.ts';

describe('METHOD grammar', () => {
  it('orig alone is the baseline: no corpora, no online terms', () => {
    const m = parseMethod('orig');
    expect(m).toMatchObject({ cf: [], f: [], fgsm: null, sal: null, mixup: null, ls: null, corpora: [], canonical: 'orig' });
    expect(needsMasks(m)).toBe(false);
  });

  it('maps cf-/f- terms to corpus folders and fills defaults', () => {
    const m = parseMethod('cf-tile+f-random+sal');
    expect(m.cf).toEqual([{ kind: 'cf', infill: 'tile', folder: 'cf-tile' }]);
    expect(m.f).toEqual([{ kind: 'f', infill: 'random', folder: 'f-random' }]);
    expect(m.corpora).toEqual(['cf-tile', 'f-random']);
    expect(m.sal).toEqual({ lambda: METHOD_DEFAULTS.sal });
    expect(m.canonical).toBe('orig+cf-tile+f-random+sal@1');
    expect(needsMasks(m)).toBe(true);
    expect(methodSlug(m)).toBe('cf-tile_f-random_sal1');
  });

  it('accepts any infill name and multi-dash names', () => {
    const m = parseMethod('cf-cagan+f-mixed-rand+cf-my-inpainter2');
    expect(m.corpora).toEqual(['cf-cagan', 'f-mixed-rand', 'cf-my-inpainter2']);
  });

  it('reads @values, including exponents, and canonicalises order and case', () => {
    const m = parseMethod(' LS@0.05 + f-fgsm@0.3 + sal@1e-3 + mixup@.3 + orig ');
    expect(m.fgsm).toEqual({ epsilon: 0.3 });
    expect(m.sal).toEqual({ lambda: 0.001 });
    expect(m.mixup).toEqual({ alpha: 0.3 });
    expect(m.ls).toEqual({ epsilon: 0.05 });
    expect(m.corpora).toEqual([]);
    expect(m.canonical).toBe('orig+f-fgsm@0.3+sal@0.001+mixup@0.3+ls@0.05');
    expect(parseMethod('f-fgsm').fgsm).toEqual({ epsilon: 0.6 });
    expect(parseMethod('mixup').mixup).toEqual({ alpha: 0.2 });
    expect(parseMethod('ls').ls).toEqual({ epsilon: 0.1 });
  });

  it('rejects unknown terms with the grammar in the message', () => {
    const err = (() => { try { parseMethod('orig+cutmix'); } catch (e) { return e; } })() as UserError;
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/unknown term "cutmix"/);
    expect(err.message).toMatch(/cf-<infill>/);
    expect(err.message).toMatch(/f-fgsm\[@eps\]/);
  });

  it('rejects malformed specs', () => {
    expect(() => parseMethod('')).toThrow(/empty/);
    expect(() => parseMethod('orig++sal')).toThrow(/empty term/);
    expect(() => parseMethod('sal@abc')).toThrow(/not a number/);
    // a negative value is a number out of range, not "not a number"
    expect(() => parseMethod('sal@-1')).toThrow(/"sal@-1": value -1 is out of range \(lambda > 0\)/);
    expect(() => parseMethod('sal@abc')).toThrow(/"@abc" is not a number \(allowed: lambda > 0\)/);
    expect(() => parseMethod('ls@1.5')).toThrow(/out of range/);
    expect(() => parseMethod('cf-tile@2')).toThrow(/takes no "@value"/);
    expect(() => parseMethod('orig@1')).toThrow(/takes no "@value"/);
    expect(() => parseMethod('sal+sal@2')).toThrow(/appears twice/);
    expect(() => parseMethod('cf-Ti_le')).toThrow(/infill names/);
  });

  it('parses --cf-loss', () => {
    expect(parseCfLoss('uniform-except-y')).toBe('uniform-except-y');
    expect(() => parseCfLoss('kl')).toThrow(/logp, uniform, uniform-except-y/);
  });
});
