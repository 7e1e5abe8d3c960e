"""The Faust worker: thin wiring of the pure core and the adapters."""
