"""The stages of ``bench run``: conditions, tune, generate, evaluate, aggregate, report. Each
reads only what the stages before it wrote to the run directory."""
