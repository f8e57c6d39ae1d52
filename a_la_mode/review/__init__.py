"""Reading plans and stores: diff, graph, status, provenance, revocation."""
