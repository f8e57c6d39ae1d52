"""The trust catalogue: every fault a hostile audit found, one module per area, each test
reproducing the fault as a user meets it and showing what they see now."""
