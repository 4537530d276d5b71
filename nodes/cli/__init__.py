"""`bcx`, the operator's command line: nodes/cli/main.py is its entry point."""
