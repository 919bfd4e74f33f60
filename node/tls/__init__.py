"""TLS: certificate bundles, server contexts (policy, SNI, client authentication)."""
