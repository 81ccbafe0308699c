"""DataFrame -> DataFrame transforms several layers share (schema contract, change events, columns, PCI, PII); no reading or writing inside. Each layer keeps its own in <layer>/transforms.py."""
