"""Use cases that the HTTP API (``web/``) and the command line (``cli/``) share; those two only
adapt HTTP and the terminal to them."""
