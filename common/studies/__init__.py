"""Studies over many trained models: settings searches, promotion of a design on validation."""
