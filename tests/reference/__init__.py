"""The Python model of the decision core, the reference the native core is checked against.

The rules written plainly in Python (exact integers and Fractions, one half-up rounding, the
tenant state machine of accounts.md) live once, in `rating_engine.stream.model`, which the
streaming worker still decides with; this package names them `tests.reference.<module>` and adds
`cdr` (the per-call pricing of `rate`, which only the tests need). The differential tests feed
random CDR lines and event streams through the model and the native core and require
identical bytes.
"""

import importlib
import sys

MODULES = ("clock", "deck", "engine", "events", "money", "pricing", "records", "state", "tenant")

for _name in MODULES:
    _module = importlib.import_module(f"rating_engine.stream.model.{_name}")
    sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
