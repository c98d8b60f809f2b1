"""The sweep and lifelong specs (TOML), installed as the data package ``ntpt_ray.search``:
``ntpt specs`` lists them and ``ntpt sweep NAME`` (``ntpt lifelong NAME``, ``ntpt tune NAME``)
runs one by name. ``terpret_basic_block.toml`` reads TerpreT's files from beside the checkout and
is not installed."""
