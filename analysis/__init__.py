"""babelmap.analysis: linguistic measures, correlation, clustering, figures, transfer, reports."""
