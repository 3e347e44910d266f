"""Tables, plots and the HTML report (arriving with the run/report issue; empty so far)."""
