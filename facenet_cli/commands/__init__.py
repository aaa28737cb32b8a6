"""The facenet subcommands: one module per command group, each with register(app)."""
