"""DS-CNN on Speech Commands (MLPerf Tiny keyword spotting)."""
