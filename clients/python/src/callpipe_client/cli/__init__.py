"""The ``callpipe`` command line tool (``callpipe --help``)."""
