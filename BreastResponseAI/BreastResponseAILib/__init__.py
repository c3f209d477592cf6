"""BreastResponseAI library: the module's Logic (MRML + core, no Qt), tested headless in CI."""
