"""The data of the VHDX benchmarks' 3-level chain, in large pieces (each
"vhd write" or "vm write" goes through the VHDX log and syncs, so a piece a
call): writes DIR/plan0.txt (the base), plan1.txt and plan2.txt (the two
differencing levels), each a line "DISK_OFFSET POOL_OFFSET LENGTH" per write,
POOL_OFFSET "zero" for a run of zeros; prints nothing. The bytes come from a
pool file of POOL bytes; level 0 writes one piece in each 32 MiB window until
the pool is used up. Usage: chain_plan_large.py SEED DISK_BYTES POOL_BYTES DIR
"""

import random
import sys

seed, disk, pool = (int(a) for a in sys.argv[1:4])
work = sys.argv[4]
rng = random.Random(seed)
MiB, KiB = 1 << 20, 1 << 10

# Level 0: the pool in 8, 16 and 24 MiB pieces, each at a random 1 MiB offset of
# its own 32 MiB window (so no overlaps), windows in random order: blocks
# whole, partly covered or empty.
base, src = [], 0
windows = rng.sample(range(disk // (32 * MiB)), disk // (32 * MiB))
for w in windows:
    if src >= pool:
        break
    length = min(rng.choice((8, 16, 24)) * MiB, pool - src)
    off = w * 32 * MiB + rng.randrange(0, (32 * MiB - length) // MiB + 1) * MiB
    base.append((off, src, length))
    src += length


def scattered(count, length, align):
    return [(rng.randrange(0, (disk - length) // align) * align,
             rng.randrange(0, (pool - length) // align) * align, length)
            for _ in range(count)]


# Level 1: 64 MiB in 8 MiB pieces at 4 KiB offsets, across blocks.
level1 = scattered(8, 8 * MiB, 4 * KiB)
# Level 2: 60 MiB in 2 MiB pieces at sector offsets, then zeros over two
# whole 2 MiB blocks the base wrote.
level2 = scattered(30, 2 * MiB, 512)
written = [b for off, _, length in base
           for b in range(-(-off // (2 * MiB)), (off + length) // (2 * MiB))]
level2 += [(b * 2 * MiB, "zero", 2 * MiB) for b in rng.sample(written, 2)]

for level, plan in enumerate((base, level1, level2)):
    with open(f"{work}/plan{level}.txt", "w") as f:
        for off, src, length in plan:
            f.write(f"{off} {src} {length}\n")
