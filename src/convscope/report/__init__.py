"""The report layer: `figures` (matplotlib, no display needed), `html` (the self-contained
`report.html`), `compare` (runs side by side) and `view` (a run directory read back for them).

Import the submodules themselves: this package imports nothing up front, so reading a run
(`view`) never loads matplotlib, which costs about 0.3 s and only drawing needs.
"""
