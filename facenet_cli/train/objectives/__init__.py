"""Training objectives, one module each (the rows of ``facenet_cli.train.registry.OBJECTIVES``)."""
