"""Stores: the contract, the directory store, manifests, signing."""
