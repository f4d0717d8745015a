#!/usr/bin/env python3
# Where a server's CPU goes, from `perf record -g` of one process whose Node
# ran with --perf-basic-prof (JIT frames named): write syscalls, other kernel,
# the plugin's JavaScript, Node's JavaScript, builtins, V8, libuv, GC.
#
#   BENCH_SERVER_NODE_ARGS=--perf-basic-prof npm run bench -- --variants=ours --scenarios=fanout-10k &
#   perf record -F 2999 -g -p <server pid> -o perf.data -- sleep 3   # while it publishes
#   python3 bench/perf-breakdown.py perf.data <server pid>
import sys, subprocess, collections, re
data, main = sys.argv[1], sys.argv[2]
out = subprocess.run(['perf','script','-i',data,'-F','tid,ip,sym'], capture_output=True, text=True).stdout
c = collections.Counter(); n = 0
for s in out.strip().split('\n\n'):
    lines = s.strip().split('\n')
    if len(lines) < 2: continue
    tid = lines[0].strip()
    frames = [re.sub(r'^\s*[0-9a-f]+ ', '', l.strip()) for l in lines[1:]]
    n += 1
    st = ' | '.join(frames)
    leaf = frames[0]
    if 'entry_SYSCALL' in st:
        k = 'kernel: write syscall' if ('ksys_write' in st or 'do_writev' in st) else 'kernel: other syscall'
    elif leaf.startswith('JS:'):
        k = 'JS: plugin' if '/plugin/' in leaf else ('JS: node internals' if 'node:' in leaf else 'JS: other ' + leaf[:70])
    elif leaf.startswith('Builtins_'):
        # attribute to first JS frame
        js = next((f for f in frames if f.startswith('JS:')), '')
        k = 'builtins under ' + ('plugin' if '/plugin/' in js else ('node internals' if 'node:' in js else 'other'))
    elif 'v8::internal' in leaf and any(x in st for x in ['Heap', 'GC', 'Scaveng', 'Mark', 'Sweep']):
        k = 'V8 GC'
    elif 'uv_' in leaf or 'uv__' in leaf: k = 'libuv'
    elif leaf.startswith('node::'): k = 'node C++'
    elif 'libc' in leaf or leaf in ('malloc','free','__memmove_avx_unaligned_erms', '__GI___libc_write') or leaf.startswith('__'): k = 'libc'
    elif leaf.startswith('v8::'): k = 'V8 other'
    else: k = 'other: ' + leaf[:60]
    if tid != main: k = '[other thread] ' + k
    c[k] += 1
for k, v in c.most_common(30): print(f'{100*v/n:5.1f}%  {k}')
print('samples', n)
