"""TLS: certificate files, server contexts (policy, SNI, client authentication)."""
