"""The run tags the project sets and reads, named once: who started a run and which layer it runs."""

TRIGGER_TAG = "crypto-weekly/trigger"  # schedule | catch_up_sensor | freshness_sensor | cli | ...
LAYER_TAG = "crypto-weekly/layer"  # daily | weekly
