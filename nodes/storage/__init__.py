"""Storage nodes: file, file in, watch, confined to the files folder."""
