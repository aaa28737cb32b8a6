"""Using a trained model: compare photos, embed folders, name people with a classifier."""
