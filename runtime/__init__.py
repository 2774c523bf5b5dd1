"""sofiaflow runtime: the flow engine. It imports neither `nodes` nor `editor`."""
