"""Views of an analysis: summary.csv, ranking.csv, TABLES.md, the plots and index.html."""
