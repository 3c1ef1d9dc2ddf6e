"""The data of the benchmarks' 3-level chain, as plans of writes: prints
nothing, writes DIR/plan0.txt (the base), plan1.txt and plan2.txt (the two
differencing levels), each a line "DISK_OFFSET POOL_OFFSET LENGTH" per write,
POOL_OFFSET "zero" for a run of zeros. The bytes come from a pool file of
POOL bytes. Usage: chain_plan.py SEED DISK_BYTES POOL_BYTES DIR
"""

import random
import sys

seed, disk, pool = (int(a) for a in sys.argv[1:4])
work = sys.argv[4]
rng = random.Random(seed)
MiB, KiB, block = 1 << 20, 1 << 10, 2 << 20

# Level 0: the pool in 1 MiB pieces over half of the 1 MiB slots, in random
# order: about a quarter of the blocks full, half of them half full.
slots = rng.sample(range(disk // MiB), pool // MiB)
base = [(slot * MiB, i * MiB, MiB) for i, slot in enumerate(slots)]


def scattered(count, length, align):
    return [(rng.randrange(0, (disk - length) // align) * align,
             rng.randrange(0, (pool - length) // align) * align, length)
            for _ in range(count)]


# Level 1: 128 MiB in 256 KiB pieces at 4 KiB offsets, across blocks too.
level1 = scattered(512, 256 * KiB, 4 * KiB)
# Level 2: 128 MiB in 128 KiB pieces at sector offsets (fragmented bitmaps),
# then zeros over four blocks the base wrote whole.
level2 = scattered(1024, 128 * KiB, 512)
full = sorted(set(s // 2 for s in slots if s % 2 == 0) & set(s // 2 for s in slots if s % 2))
level2 += [(b * block, "zero", block) for b in rng.sample(full, 4)]

for level, plan in enumerate((base, level1, level2)):
    with open(f"{work}/plan{level}.txt", "w") as f:
        for off, src, length in plan:
            f.write(f"{off} {src} {length}\n")
