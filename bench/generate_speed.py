"""Times the synthetic generator: 10,000 combined examples over the ten built-in tools (target: under 5 s)."""
import os
import tempfile
import time

os.environ["NURSERY_HOME"] = tempfile.mkdtemp(prefix="nursery-bench-")

from nursery_core.data.generator import generate_examples, nursery_generate_data  # noqa: E402
from nursery_core.data.tools import DEFAULT_TOOL_NAMES  # noqa: E402

N = 10_000
TARGET_S = 5.0

t0 = time.perf_counter()
examples, report = generate_examples(DEFAULT_TOOL_NAMES, N, "medium", seed=0)
gen_s = time.perf_counter() - t0
assert len(examples) == N

t0 = time.perf_counter()
row = nursery_generate_data(DEFAULT_TOOL_NAMES, N, "medium", seed=0, name="bench")
total_s = time.perf_counter() - t0
assert row["num_examples"] == N

print(f"generate {N} examples (validated, in memory): {gen_s:.2f} s ({N / gen_s:,.0f}/s)")
print(f"nursery_generate_data end to end (generate, split, stats, write, record): {total_s:.2f} s "
      f"({total_s / TARGET_S:.2f} of the {TARGET_S:.0f} s target)")
print(f"categories: {report['categories']}; near-duplicates dropped: {report['near_duplicates_dropped']}")
print("target met" if total_s < TARGET_S else "target missed (is the machine busy? see `uptime`)")
