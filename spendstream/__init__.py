"""spendstream: the pure core (money, windows, pricing, allocation, budgets) plus the CLI and Settings.

Nothing in the core does I/O, reads a clock or the environment: entry points pass `now` and adapters in.
"""
