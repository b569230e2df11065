import { describe, it, expect } from 'vitest';
import { TABLE8, presetFor, parseSchedule, scheduledLr, plateauStep, scheduleToString, type PlateauState } from '../trainer/presets.ts';

describe('presets', () => {
  it('carries paper Table 8 for the real datasets', () => {
    expect(presetFor('in9', 'in9')).toMatchObject({ optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4, epochs: 25, batch: 32, clipNorm: 1, schedule: { kind: 'step', milestones: [6, 12, 18], factor: 0.1 } });
    expect(presetFor('waterbirds', 'waterbirds')).toMatchObject({ optimizer: 'sgd', lr: 8e-4, weightDecay: 1e-4, epochs: 40, batch: 32, schedule: { kind: 'plateau', patience: 1 } });
    expect(presetFor('cct', 'cct')).toMatchObject({ optimizer: 'rmsprop', lr: 0.003, momentum: 0.9, epochs: 50, batch: 64, valMetric: 'auc', schedule: { kind: 'step', milestones: [15, 30, 45] } });
    expect(TABLE8.in9.warning).toBeNull();
  });

  it('gives synth-* datasets the loudly-marked CPU preset', () => {
    const p = presetFor('synth-waterbirds', 'waterbirds');
    expect(p.model).toBe('small');
    expect(p.size).toBe(32);
    expect(p).toMatchObject({ optimizer: 'adam', lr: 5e-3, epochs: 8, clipNorm: 1 });
    expect(p.warning).toMatch(/NOT THE PAPER/);
    expect(presetFor('synth-cct', 'cct').valMetric).toBe('auc');
    // a copy: editing it must not change the table
    p.schedule = { kind: 'constant' };
    expect(presetFor('synth-waterbirds', 'waterbirds').schedule.kind).not.toBe('constant');
  });

  it('step and cosine schedules', () => {
    const s = parseSchedule('step:6,12,18');
    expect([0, 5, 6, 11, 12, 18, 24].map((e) => scheduledLr(0.05, s, e, 25))).toEqual([0.05, 0.05, 0.05 * 0.1, 0.05 * 0.1, 0.05 * 0.1 ** 2, 0.05 * 0.1 ** 3, 0.05 * 0.1 ** 3].map((v) => expect.closeTo(v, 12)));
    expect(scheduledLr(1, { kind: 'cosine' }, 0, 4)).toBe(1);
    expect(scheduledLr(1, { kind: 'cosine' }, 2, 4)).toBeCloseTo(0.5, 12);
    expect(scheduleToString(parseSchedule('step:3x0.5'))).toBe('step:3x0.5');
    expect(parseSchedule('plateau:2x0.5')).toEqual({ kind: 'plateau', patience: 2, factor: 0.5, monitor: 'loss', threshold: 1e-4 });
    expect(() => parseSchedule('linear')).toThrow(/step:6,12,18/);
  });

  it('reduce-on-plateau (patience 1, old mode-max form) cuts the lr after two epochs without improvement', () => {
    let st: PlateauState = { best: -Infinity, bad: 0, lr: 1 };
    const lrs: number[] = [];
    for (const v of [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7]) { st = plateauStep(st, v, { patience: 1, factor: 0.1 }); lrs.push(st.lr); }
    expect(lrs.map((v) => +v.toPrecision(6))).toEqual([1, 1, 1, 0.1, 0.1, 0.1, 0.01]);
  });
});
