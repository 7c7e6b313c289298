"""The run report: one self-contained HTML page and a Markdown file with results, CIs and plots."""
