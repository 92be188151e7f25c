"""Every figure Init Lab draws, built by pure functions: statistics in, `go.Figure` (or CSV text) out. No Streamlit
here: the page decides where a figure goes (app/ui.py's `chart`), these modules only what it shows.

- style.py: the look every figure shares (palette, template, axes, per-layer traces), the pieces the others build on
- figures.py: the chart types (per-layer histograms, depth profiles, curves over steps, heatmaps, decision boundary)
- training.py: a run's snapshots -> the Training and Compare tabs' figures
- theory.py: the Theory tab's figures (predicted against measured, phase diagram, Jacobian spectrum)
- export.py: a figure's data, or a run's statistics, as CSV
"""
