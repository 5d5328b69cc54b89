"""The pieces of scripts/bench.py, one job each: setting (the configurations and models it
runs), timing, memory, costs (the per-parameter cost model) and report (rows and markdown)."""
