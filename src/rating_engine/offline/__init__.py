"""The offline commands: `rate` (CDR files) and `simulate` (event files, virtual clock)."""
