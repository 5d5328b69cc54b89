"""Paper tables on Hydra multirun: their definitions, the sweeps, the aggregation and the report."""
