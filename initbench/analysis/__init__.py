"""What the results say: paired statistics over seeds, expectations, diffs, the papers' claims."""
