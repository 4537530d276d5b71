"""What every agency's code shares: number statuses, feedback wording, routing, batching.

Pure apart from ``obligations`` (which escalates through a handler's Context) and
``routing.router_for`` (a cache per directory version): values in, values out. The
role packages apply these inside the node's ledger transactions.
"""
