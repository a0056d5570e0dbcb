"""The decision rules in plain Python (exact integers and Fractions, one half-up rounding, the
tenant state machine of accounts.md): what the streaming worker decides with, and the
reference the native core is tested against byte for byte (`tests/reference`)."""
