"""``python -m opencdp`` runs the CLI."""

from opencdp.cli.main import main

main()
