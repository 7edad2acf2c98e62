"""Training runs: options, resumable run directories, validation-based selection."""
