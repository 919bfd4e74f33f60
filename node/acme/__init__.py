"""Automatic certificates (ACME, RFC 8555): one orderer per cluster (the active, under
its fencing token; a standalone node for itself), results as bundle revisions."""
