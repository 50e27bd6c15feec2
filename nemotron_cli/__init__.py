"""The `nemotron` command line (Typer). Modules here import nothing heavy at top level."""
