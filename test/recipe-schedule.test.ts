import { describe, it, expect } from 'vitest';
import { TABLE8, PLATEAU_THRESHOLD, parseSchedule, plateauStep, plateauValue, presetFor, scheduleToString, type Schedule } from '../trainer/presets.ts';
import { trainResizeSide } from '../trainer/augment.ts';

describe('Waterbirds reduce-on-plateau watches validation loss, as the authors did', () => {
  it('the preset monitors loss, mode min, PyTorch threshold 1e-4 (rel), patience 1', () => {
    expect(presetFor('waterbirds', 'waterbirds').schedule).toEqual({ kind: 'plateau', patience: 1, factor: 0.1, monitor: 'loss', threshold: PLATEAU_THRESHOLD });
    expect(PLATEAU_THRESHOLD).toBe(1e-4);
    expect(TABLE8.waterbirds.valMetric).toBe('acc'); // model selection still on accuracy
  });

  it('plateauValue hands the loop val.loss for a loss schedule and val.metric otherwise', () => {
    const s = TABLE8.waterbirds.schedule;
    expect(plateauValue(s, { metric: 0.9, loss: 0.3 })).toBe(0.3);
    expect(plateauValue(parseSchedule('plateau@metric'), { metric: 0.9, loss: 0.3 })).toBe(0.9);
  });

  it('a falling loss keeps the lr even while accuracy stalls; a rise or a < 1e-4 relative gain counts as a bad epoch', () => {
    const s = TABLE8.waterbirds.schedule as Extract<Schedule, { kind: 'plateau' }>;
    let st = { best: -Infinity as number | null, bad: 0, lr: 8e-4 };
    const lrs: number[] = [];
    // 0.5 → 0.4 improves; 0.39999 is within 1e-4·0.4 = 4e-5 (bad 1); 0.45 (bad 2 > patience) → ×0.1; 0.3 improves
    for (const loss of [0.5, 0.4, 0.39999, 0.45, 0.3, 0.3]) { st = plateauStep(st, loss, s); lrs.push(st.lr); }
    expect(lrs.map((v) => +v.toPrecision(6))).toEqual([8e-4, 8e-4, 8e-4, 8e-5, 8e-5, 8e-5]);
    // under the old rule (val accuracy, mode max) a rising loss would have been read as "improving"
    expect(plateauStep({ best: 0.4, bad: 0, lr: 1 }, 0.45, s).bad).toBe(1);
  });

  it('survives state.json: a best written as null (JSON of ±Infinity) means no epoch yet', () => {
    const st = JSON.parse(JSON.stringify({ best: Infinity, bad: 0, lr: 1 }));
    expect(st.best).toBeNull();
    expect(plateauStep(st, 0.7, TABLE8.waterbirds.schedule as Extract<Schedule, { kind: 'plateau' }>)).toEqual({ best: 0.7, bad: 0, lr: 1 });
  });

  it('does not apply a reduction smaller than 1e-8 (PyTorch eps)', () => {
    expect(plateauStep({ best: 1, bad: 1, lr: 5e-9 }, 2, { patience: 1, factor: 0.1, monitor: 'loss', threshold: 1e-4 }).lr).toBe(5e-9);
  });

  it('the flag: plateau[:P[xF]][@loss|@metric], default @loss; round trip', () => {
    expect(parseSchedule('plateau')).toEqual({ kind: 'plateau', patience: 1, factor: 0.1, monitor: 'loss', threshold: 1e-4 });
    expect(parseSchedule('plateau:2x0.5@metric')).toMatchObject({ patience: 2, factor: 0.5, monitor: 'metric' });
    expect(scheduleToString(parseSchedule('plateau:3x0.2'))).toBe('plateau:3x0.2@loss');
    expect(() => parseSchedule('plateau@acc')).toThrow(/@loss\|@metric/);
  });
});

describe('train-time resize is round(S·8/7)', () => {
  it('256 for the paper\'s 224 crop (S + S/8 gave 252); 37 for the synthetic 32', () => {
    expect(trainResizeSide(224)).toBe(256);
    expect(trainResizeSide(32)).toBe(37);
    expect(trainResizeSide(64)).toBe(73);
    expect(trainResizeSide(128)).toBe(146);
    expect(trainResizeSide(16)).toBe(18);
  });
});
