"""The Python model of the decision core, kept as the reference the native core is checked against.

These modules are the rules written plainly in Python (exact integers and Fractions, one
half-up rounding, the tenant state machine of accounts.md). The package no longer runs
them: `rating_engine._core` (the Rust crate in `native/`) does. The differential tests
feed random CDR lines and event streams through both and require identical bytes.
"""
