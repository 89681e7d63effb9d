"""``finetrail demo``: the whole pipeline on synthetic data, as the commands a user would type.

- :mod:`.pipeline`: :func:`run_demo` as named steps, and the helpers the benchmarks reuse;
- :mod:`.summary`: the summary table, read through the one evidence reader.
"""

from finetrail.demo.pipeline import demo_cmd, register, run_demo

__all__ = ["demo_cmd", "register", "run_demo"]
