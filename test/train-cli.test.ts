import { describe, it, expect } from 'vitest';
import { trainCommand, evalCommand } from '../trainer/cli-train.ts';

describe('train / eval CLI', () => {
  it('--help lists every option with its default, and the METHOD grammar', () => {
    const help = trainCommand().helpInformation().replace(/\s+/g, ' ');
    for (const flag of ['--method', '--dataset', '--seed', '--epochs', '--batch', '--lr', '--optimizer', '--model', '--size', '--backend', '--init',
      '--cf-loss', '--run-id', '--runs-root', '--corpora-root', '--patience', '--max-steps', '--threads', '--schedule', '--weight-decay']) {
      expect(help).toContain(flag);
    }
    expect(help).toMatch(/--cf-loss <kind> .*?\(default: "logp"\) --init/);
    expect(help).toMatch(/choices: "tiny", "small", "r50x1"/);
    expect(help).toContain('f-fgsm[@eps]');
    expect(evalCommand().helpInformation()).toMatch(/--run <id>[\s\S]*--aupr-images/);
  });

  it('rejects a bad --cf-loss with the choices, before loading any data', async () => {
    const cmd = trainCommand().exitOverride();
    await expect(cmd.parseAsync(['--method', 'orig', '--dataset', 'x', '--cf-loss', 'kl'], { from: 'user' })).rejects.toThrow(/logp, uniform, uniform-except-y/);
  });
});
