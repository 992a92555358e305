"""The report layer: `compare` (runs side by side, as text and as compare.html).

The run's own report.html is drawn by `convscope.presentation.report`. Import the submodules themselves:
this package imports nothing up front, so reading a run never loads matplotlib, which costs about 0.3 s
and only drawing needs.
"""
