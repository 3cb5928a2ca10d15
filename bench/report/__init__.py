"""Views of an analysis: summary.csv, ranking.csv, head_to_head.csv, robustness.csv, TABLES.md,
the plots and index.html."""
