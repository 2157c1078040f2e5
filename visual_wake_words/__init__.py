"""MobileNetV1-0.25 at 96x96 on Visual Wake Words (MLPerf Tiny)."""
