"""`hiso-plot` from a checkout: python scripts/plot.py RUN_DIR|SWEEP_DIR [...] -o out.png (see
hiso/sweep_plot.py)."""

from hiso.sweep_plot import main

if __name__ == "__main__":
    main()
