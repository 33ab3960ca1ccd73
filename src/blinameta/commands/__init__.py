"""One module per command of the ``blinameta`` command line."""
