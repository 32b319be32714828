"""Run a Python script with its stack dumped every N seconds to a file: where is a slow run stuck?

    python scripts/stack_dump.py 30 stacks.txt scripts/perf_bench.py --child repo /tmp/ckpt 4 1024 6 8
"""

import faulthandler
import runpy
import sys

if __name__ == "__main__":
    every, out, script, *rest = sys.argv[1:]
    faulthandler.dump_traceback_later(float(every), repeat=True, file=open(out, "w"))
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")
