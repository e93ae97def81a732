"""Pure domain: the economic rules of SPEC.md over Decimals, with no I/O."""
