"""The streaming worker and its Kafka tools: the worker loop (Faust) driving the native core,
record batches to aiokafka, Prometheus metrics, replay/collect helpers and the demo."""
