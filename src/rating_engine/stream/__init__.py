"""The streaming worker and its Kafka tools: the worker loop (Faust), record batches to
aiokafka, Prometheus metrics, replay/collect helpers and the demo.

`model/` is the rules in plain Python that the worker still decides with; it is byte for byte
the model the tests hold the native core to (`tests/reference` is this package), so the worker
and `simulate` give the same records.
"""
