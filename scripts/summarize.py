"""`hiso-summarize` from a checkout: python scripts/summarize.py MULTIRUN_DIR [-o STEM] (see
hiso/sweep_summary.py)."""

from hiso.sweep_summary import main

if __name__ == "__main__":
    main()
