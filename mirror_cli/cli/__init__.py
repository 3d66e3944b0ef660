"""The Typer CLI: one module per subcommand; each parses, makes one core call, renders."""
