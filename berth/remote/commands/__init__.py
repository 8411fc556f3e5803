"""Remote commands as data.

Every function in this package is pure: it takes settings and returns the exact shell text that the
transport will run on a server (or the argv it will run locally). Nothing here does I/O, so each
command is unit-testable and `berth plan` can print them verbatim.
"""
