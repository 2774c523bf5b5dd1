"""The engine core: the node contract, typed config, messages, routing, context, time and expressions."""
