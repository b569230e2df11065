#!/usr/bin/env python3
"""PyTorch (CPU) reference for bench/train.ts: the same ResNetV2 as trainer/model.ts (pre-activation units,
GroupNorm, weight-standardised convs, symmetric padding) and the same CE training step (forward, backward,
global-norm clip 1.0, SGD-momentum update). Prints one JSON line with the median step time.

usage: python3 bench/torch_step.py --threads 2 --batch 32 --size 64 --root-width 16 --widths 16,32,64 \
           --depths 1,1,1 --groups 8 --root-kernel 3 --root-stride 2 --classes 2 --steps 10
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class StdConv2d(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        m = w.mean(dim=(1, 2, 3), keepdim=True)
        v = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        w = (w - m) / torch.sqrt(v + 1e-10)
        return F.conv2d(x, w, None, self.stride, self.padding)


def conv(cin, cout, k, stride):
    return StdConv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False)


def gn(ch, groups):
    g = max(1, min(groups, ch))
    while ch % g:
        g -= 1
    return nn.GroupNorm(g, ch, eps=1e-5)


class Unit(nn.Module):
    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        self.gn_a = gn(cin, groups)
        self.conv_a = conv(cin, cout, 3, stride)
        self.gn_b = gn(cout, groups)
        self.conv_b = conv(cout, cout, 3, 1)
        self.proj = conv(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, h):
        pre = F.relu(self.gn_a(h))
        shortcut = self.proj(pre) if self.proj is not None else h
        r = self.conv_a(pre)
        r = self.conv_b(F.relu(self.gn_b(r)))
        return r + shortcut


class Net(nn.Module):
    def __init__(self, a):
        super().__init__()
        widths = [int(v) for v in a.widths.split(',')]
        depths = [int(v) for v in a.depths.split(',')]
        self.root = conv(3, a.root_width, a.root_kernel, a.root_stride)
        units, cin = [], a.root_width
        for s, (w, d) in enumerate(zip(widths, depths)):
            for u in range(d):
                units.append(Unit(cin, w, (1 if s == 0 else 2) if u == 0 else 1, a.groups))
                cin = w
        self.units = nn.Sequential(*units)
        self.gn = gn(cin, a.groups)
        self.head = nn.Linear(cin, a.classes)

    def forward(self, x):
        h = self.units(self.root(x))
        h = F.relu(self.gn(h))
        return self.head(h.mean(dim=(2, 3)))


def main():
    p = argparse.ArgumentParser()
    for name, default in [('threads', 2), ('batch', 32), ('size', 64), ('root-width', 16), ('groups', 8),
                          ('root-kernel', 3), ('root-stride', 2), ('classes', 2), ('steps', 10), ('warmup', 3)]:
        p.add_argument(f'--{name}', type=int, default=default)
    p.add_argument('--widths', default='16,32,64')
    p.add_argument('--depths', default='1,1,1')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = Net(a)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    y = torch.randint(0, a.classes, (a.batch,))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y, reduction='sum') / a.batch
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({'torch': torch.__version__, 'threads': a.threads, 'batch': a.batch, 'size': a.size,
                      'ms_per_step': 1000 * statistics.median(times), 'steps': a.steps}))


if __name__ == '__main__':
    main()
