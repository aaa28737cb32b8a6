"""The demo layer: the built-in faces, the settings that suit them, and ``facenet demo``.

The library (``align``, ``train``, ``evaluate``, ``models``) takes arguments and knows nothing of
the demo; when a command gets no data arguments, the CLI asks this layer for the demo's paths and
settings (``settings``), which prepares the data first (``data``). ``plan`` renders the commands
``facenet demo`` runs from their configs, and ``run`` runs them.
"""


def __getattr__(name: str) -> object:
    # Runs trained before the model moved to the registry name it "facenet_cli.demo:demo_small".
    if name == "demo_small":
        from facenet_cli.models.small import demo_small

        return demo_small
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
