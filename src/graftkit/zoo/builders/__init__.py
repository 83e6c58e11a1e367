"""One module per way of turning package files into an HF folder; each exposes
``build(entry, sources, out) -> dict`` (``sources`` maps registry paths to files on disk;
the returned dict, e.g. conversion check results, goes into the manifest)."""
