"""Pure domain: the economic rules of docs/RULES.md over Decimals, with no I/O."""
