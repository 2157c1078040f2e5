"""On-device: TFLite export split at the exit, the early-exit runtime, tflite-micro."""
