"""infuse: put a person's own knowledge into an LLM assistant, three ways, and measure which works.

Heavy libraries (torch, transformers, datasets, lancedb) are imported inside the functions
that need them, so `import infuse` and `infuse --help` stay instant.
"""

__version__ = "0.1.0"
