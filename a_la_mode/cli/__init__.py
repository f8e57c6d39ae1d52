"""The command line and its terminal rendering."""
